"""Sweeps of DQN trials on Ray: spec, plan, runner, store, command line.

    from sweeps.runner import run_sweep
    from sweeps.spec import load_spec
    report = run_sweep(load_spec("sweeps/specs/smoke.yaml"), out="results")
    report.exit_code  # 0 all complete, 1 some failed, 130 interrupted

`sweeps.spec` reads and checks a spec (`load_spec`, `SweepSpec`, `SpecError`); `sweeps.plan`
expands it into `dqn_agent.TrialSpec`s grouped into units of work (`expand`, `make_plan`);
`sweeps.store` owns the results folder (`ResultsFolder`, `ResultsStore`, `check_resume`);
`sweeps.runner` runs a plan on Ray (`run_sweep`, and `run_unit`, the plain function each Ray
task calls); `sweeps.cli` is the `dqn-sweep` command. Only `sweeps.runner` imports Ray, so
checking a spec does not pay for it.
"""
