"""Sweeps of DQN trials on Ray: spec, plan, runner, store, command line."""
