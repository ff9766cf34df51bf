"""Many runs: the sweep file (spec), the plan, the scheduler with its local workers or Ray, and
tuning with Optuna."""
