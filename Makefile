# All set-up lives here: a fresh machine needs only `make demo` or `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: setup demo test check lint unit bench bench-learning bench-gpu docker-demo docker-test cluster-test docker-clean clean

$(BIN)/dqn-sweep: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	# rliable (the reference for the aggregate metrics' tests) pins arch<8, whose releases do
	# not import with pandas 3: install arch 8 and rliable without its pins.
	$(BIN)/pip install -q -c constraints.txt "arch>=8" "absl-py>=1"
	$(BIN)/pip install -q --no-deps "rliable==1.2.0"
	touch $@

setup: $(BIN)/dqn-sweep

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -q

test: lint unit

# The developers' fast loop: lint, types and the tests that need neither a Ray cluster nor
# Docker (about two minutes). `make test` runs everything, as CI does.
check: lint
	$(BIN)/pytest -q -m "not slow and not docker"

# The main job on its embedded default: a network-size comparison on CartPole-v1, then its
# figures and summary table, all under results/demo.
demo: setup
	$(BIN)/dqn-sweep run sweeps/specs/demo.yaml --out results
	$(BIN)/dqn-sweep plot results/demo
	$(BIN)/dqn-sweep summary results/demo

# Benchmarks (not tests): figures land in benchmarks/results/ with the command that made them.
bench: setup
	$(BIN)/python -m benchmarks.bench_speed
	$(BIN)/python -m benchmarks.bench_compile
	$(BIN)/python -m benchmarks.bench_learners
	$(BIN)/python -m benchmarks.bench_pixels
	$(BIN)/python -m benchmarks.bench_memory
	$(BIN)/python -m benchmarks.bench_validate
	$(BIN)/python -m benchmarks.bench_plans --rounds 4
	$(BIN)/python -m benchmarks.bench_plans --spec sweeps/specs/demo.yaml --rounds 3
	$(BIN)/python -m benchmarks.bench_scheduling
	$(BIN)/python -m benchmarks.bench_analysis
	$(BIN)/python -m benchmarks.bench_docker

# On a machine with a CUDA GPU and a CUDA build of torch in the venv (README, Dependencies).
bench-gpu: setup
	$(BIN)/python -m benchmarks.bench_gpu

bench-learning: setup
	$(BIN)/python -m benchmarks.bench_learning --env CartPole-v1
	$(BIN)/python -m benchmarks.bench_learning --env LunarLander-v3
	$(BIN)/python -m benchmarks.bench_learning --env MinAtar/SpaceInvaders-v0
	$(BIN)/python -m benchmarks.bench_learning --env MinAtar/Breakout-v0 --processes 2

# The smoke sweep on a Ray cluster in containers (a head and 2 workers, token auth): builds the
# images (without a registry where needed), runs the sweep through the head, leaves
# results/smoke/ with its plots, and removes the cluster (and the engine, if it had to start one).
docker-demo: setup
	docker/e2e.sh

# Only the container tests (`make test` runs them too): the compose cluster, Ray's launcher on
# this machine (docker/cluster-local.yaml), the cluster configs.
docker-test: setup
	$(BIN)/pytest -q tests/test_docker_e2e.py tests/test_docker_launcher.py \
		tests/test_docker_cluster_config.py

# Only the cluster tests: the README's cluster snippet, a two-node cluster from the venv, the
# launcher on this machine (`make test` runs them too).
cluster-test: setup
	$(BIN)/pytest -q tests/test_cluster_snippet.py tests/test_sweeps_cluster.py \
		tests/test_docker_launcher.py

docker-clean:
	-docker rmi dqn-sweeps:cpu dqn-sweeps-base:bookworm
	-docker image prune -f --filter label=dqn-sweeps.stage

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
