#!/usr/bin/env bash
# Run a sweep on the Ray cluster this container belongs to, then plot and summarise it.
# Installed in the image as `dqn-sweep-job`; meant as the entrypoint of a Ray job:
#
#   ray job submit --address http://ray-head:8265 -- dqn-sweep-job /app/specs/smoke.yaml
#
# SPEC is a sweep spec; any further arguments go to `dqn-sweep run`. Results land in
# $DQN_RESULTS_DIR (default /work/results, the folder compose mounts from the host) under the
# spec's name; plots in <results>/<name>/plots. Exit code: that of `dqn-sweep run`.
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: dqn-sweep-job SPEC [dqn-sweep run options...]" >&2
    exit 2
fi
spec="$1"
shift
out="${DQN_RESULTS_DIR:-/work/results}"
name="$(python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["name"])' "$spec")"

status=0
dqn-sweep run "$spec" --out "$out" --address "${RAY_ADDRESS:-auto}" --quiet "$@" || status=$?
if [[ $status -le 1 ]]; then
    # Also after failed trials (status 1): the figures show what completed.
    dqn-sweep plot "$out/$name"
    dqn-sweep summary "$out/$name" || true
fi
exit "$status"
