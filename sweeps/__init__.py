"""Sweeps of DQN trials on Ray: spec, plan, runner, store, command line.

    from sweeps.runner import RunOptions, run_sweep
    from sweeps.spec import load_spec
    report = run_sweep(load_spec("sweeps/specs/smoke.yaml"), RunOptions(out=Path("results")))
    report.exit_code  # 0 all complete, 1 some failed, 130 interrupted

One concept a file: `spec` reads and checks a spec; `plan` expands it into `dqn_agent.TrialSpec`s
grouped into units of work; `runner` runs a sweep (`run_sweep`, `RunOptions`); `session` is the
Ray session and the checks of the cluster it finds; `task` is the plain function each Ray task
calls; `scheduler` submits tasks and collects them (a cap in flight, retries, Ctrl-C);
`display` shows progress and the summary; `progress` is the actor tasks report env steps to;
`store` writes the results folder, `resume` checks what a rerun may keep, `lock` keeps one run
at a time, `provenance` records versions and the commit; `cli` is the `dqn-sweep` command.
`validate` imports neither Ray nor torch, so checking a spec does not pay for them.
"""
