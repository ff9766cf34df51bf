"""Training one run: configuration, the model, the Lightning module and its callbacks, preparing
and running a run, the record it leaves (environment, loggers, resume points, conformance
verdicts), sampling and diagnostics, and the per-process settings (cores, subnormals, memory)."""
