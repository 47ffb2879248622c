"""Learning curves and summary tables from results folders (built in a later commit)."""
