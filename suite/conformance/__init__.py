"""The conformance kit: the checks every architecture's encoder must pass (`check_architecture`).

`kit` runs them; `sequence`, `grid` and `tree` hold each structure's checks, one top-level function
per check (named as a failing message cites it, e.g. `sequence:carried_state`); `common` what they
share."""
