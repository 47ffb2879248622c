#!/usr/bin/env bash
# The whole container path, end to end, for `make docker-demo`, the tests and CI:
# a Docker engine (installed and started here if none runs and this machine allows it), the base
# image (built without a registry where possible), the project image, a compose cluster of a
# Ray head and workers, the smoke sweep submitted to the head as a Ray job, its results and plots
# checked on the host, and everything torn down again (the engine too, if this script started it).
#
#   docker/e2e.sh            all steps; leaves results/<sweep>/ (Parquet files and plots)
#   docker/e2e.sh STEP...    single steps, in order; the tests share them between test cases:
#     engine        make sure an engine runs (exit 77 with the reason where none can be had)
#     base          the base image: $DQN_BASE_IMAGE, or one built by build-base-image.sh
#     image         the project image $DQN_IMAGE (CPU build); records build time and size
#     up            make the token, start head + $DQN_WORKERS workers, wait until all joined
#     sweep         submit $DQN_SPEC to the head as a Ray job and wait for it
#     check         results/<sweep>/trials.parquet complete, trained on >1 node, plots there
#     down          remove the cluster's containers and network
#     engine-stop   stop the engine if `engine` started it, and restore the firewall rules
#
# Settings (environment): DQN_WORKERS (2), DQN_SPEC (smoke.yaml, in sweeps/specs/),
# DQN_RESULTS (./results), DQN_IMAGE (dqn-sweeps:cpu), DQN_BASE_IMAGE (see `base`),
# DQN_COMPOSE_PROJECT (dqn-sweeps-e2e), DQN_COMPOSE ("docker compose" or "docker-compose"),
# DQN_WHEELHOUSE (1: build offline from wheels of the host venv when it fits; 0: from PyPI),
# DQN_BUILD_FLAGS (more `docker build` flags, e.g. --no-cache), DQN_KEEP (1: `all` leaves the
# cluster running), DQN_E2E_STATE (build/docker-e2e), DQN_REUSE_IMAGE (1: `image` keeps an image
# built from the same inputs instead of building again; the test modules share one build so).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
state="${DQN_E2E_STATE:-$repo/build/docker-e2e}"
image="${DQN_IMAGE:-dqn-sweeps:cpu}"
local_base="dqn-sweeps-base:bookworm"
workers="${DQN_WORKERS:-2}"
spec="${DQN_SPEC:-smoke.yaml}"
results="${DQN_RESULTS:-$repo/results}"
project="${DQN_COMPOSE_PROJECT:-dqn-sweeps-e2e}"
wheels_dir="${DQN_WHEELS_DIR:-/opt/wheels}"
mkdir -p "$state" "$results"
results="$(cd "$results" && pwd)"

# Containers never run as root; as the invoking user where that is not root, else uid 1000.
if [[ $(id -u) -ne 0 ]]; then
    export DQN_UID="${DQN_UID:-$(id -u)}" DQN_GID="${DQN_GID:-$(id -g)}"
else
    export DQN_UID="${DQN_UID:-1000}" DQN_GID="${DQN_GID:-1000}"
fi
export DQN_IMAGE="$image" DQN_RESULTS="$results" DQN_SPECS="$repo/sweeps/specs"
export DQN_TOKEN_FILE="${DQN_TOKEN_FILE:-$here/.secrets/ray_token}"

log() { printf '[e2e %s] %s\n' "$(date +%T)" "$*" | tee -a "$state/e2e.log" >&2; }
skip() {
    log "SKIP: $*"
    echo "$*" >"$state/skip-reason"
    exit 77
}
is_root() { [[ $(id -u) -eq 0 ]]; }

compose() {
    local cmd
    if [[ -n "${DQN_COMPOSE:-}" ]]; then
        read -r -a cmd <<<"$DQN_COMPOSE"
    elif docker compose version >/dev/null 2>&1; then
        cmd=(docker compose)
    else
        cmd=(docker-compose)
    fi
    "${cmd[@]}" -p "$project" -f "$here/docker-compose.yml" "$@"
}

apt_install() {
    is_root && command -v apt-get >/dev/null || return 1
    log "apt-get install $*"
    if [[ ! -f "$state/apt-updated" ]]; then
        apt-get update -qq >&2 && touch "$state/apt-updated"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

step_engine() {
    if docker info >/dev/null 2>&1; then
        log "a Docker engine runs already: $(docker version --format '{{.Server.Version}}')"
    else
        if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
            apt_install docker.io ||
                skip "no Docker engine runs, and none can be installed here (needs root and apt-get)"
        fi
        if [[ -S /var/run/docker.sock ]] && ! is_root; then
            skip "a Docker engine runs, but this user may not use it (not in the docker group?)"
        fi
        is_root || skip "no Docker engine runs, and only root can start one here"
        # Firewall rules before the engine adds its own, to put back in engine-stop.
        if command -v iptables-save >/dev/null; then
            iptables-save >"$state/iptables.before" 2>/dev/null || true
        fi
        log "starting dockerd (log: $state/dockerd.log)"
        setsid dockerd >"$state/dockerd.log" 2>&1 </dev/null &
        echo $! >"$state/dockerd.pid"
        for _ in $(seq 60); do
            docker info >/dev/null 2>&1 && break
            if ! kill -0 "$(cat "$state/dockerd.pid")" 2>/dev/null; then
                tail -5 "$state/dockerd.log" >&2
                rm -f "$state/dockerd.pid"
                skip "dockerd would not start here (see $state/dockerd.log)"
            fi
            sleep 1
        done
        docker info >/dev/null 2>&1 || skip "dockerd did not answer within 60 s"
        log "dockerd $(docker version --format '{{.Server.Version}}') started"
    fi
    if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
        apt_install docker-compose || skip "neither 'docker compose' nor 'docker-compose' here"
    fi
}

step_engine_stop() {
    [[ -f "$state/dockerd.pid" ]] || return 0
    local pid
    pid="$(cat "$state/dockerd.pid")"
    log "stopping the dockerd this script started (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    rm -f "$state/dockerd.pid"
    # dockerd leaves its firewall rules (FORWARD policy DROP) and its bridge behind.
    if [[ -f "$state/iptables.before" ]] && command -v iptables-restore >/dev/null; then
        local table
        for table in filter nat; do
            if ! grep -q "^\*$table" "$state/iptables.before"; then
                iptables -t "$table" -F 2>/dev/null || true
                iptables -t "$table" -X 2>/dev/null || true
            fi
        done
        iptables -P FORWARD ACCEPT 2>/dev/null || true
        iptables-restore <"$state/iptables.before" 2>/dev/null || log "could not restore iptables"
        rm -f "$state/iptables.before"
    fi
    ip link delete docker0 2>/dev/null || true
}

step_base() {
    local base="${DQN_BASE_IMAGE:-}"
    if [[ -z "$base" ]]; then
        if docker image inspect "$local_base" >/dev/null 2>&1; then
            base="$local_base"
        elif is_root && { command -v debootstrap >/dev/null || apt_install debootstrap; }; then
            log "building $local_base with debootstrap (no registry needed)"
            "$here/build-base-image.sh" "$local_base" >/dev/null
            base="$local_base"
        else
            base="python:3.11-slim"
        fi
    fi
    if ! docker image inspect "$base" >/dev/null 2>&1; then
        docker pull "$base" >&2 || skip "base image $base: not here and cannot be pulled"
    fi
    echo "$base" >"$state/base-image"
    log "base image: $base"
}

# Offline build: the host venv's exact packages as wheels, when its Python is the image's.
prepare_wheelhouse() {
    local base="$1" pip="$repo/.venv/bin/pip" image_py host_py
    [[ "${DQN_WHEELHOUSE:-1}" == 1 && -x "$pip" ]] || return 1
    image_py="$(docker run --rm "$base" python3 -c 'import sys; print(sys.version_info[:2])')"
    host_py="$("$repo/.venv/bin/python" -c 'import sys; print(sys.version_info[:2])')"
    [[ "$image_py" == "$host_py" ]] || return 1
    "$pip" freeze --exclude-editable 2>/dev/null | grep -v -i -E '^(dqn-sweeps|-e )' \
        >"$state/venv-freeze.txt"
    "$repo/.venv/bin/python" -c 'import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' \
        "$repo/pyproject.toml" >"$state/requirements.txt"
    log "wheelhouse: pip download (the host's package sources) -> docker/wheels/"
    "$pip" download -q --only-binary=:all: -d "$here/wheels" \
        -c "$state/venv-freeze.txt" -r "$state/requirements.txt" pip setuptools \
        >"$state/pip-download.log" 2>&1 || {
        tail -20 "$state/pip-download.log" >&2
        log "pip download failed: building from the package indexes instead"
        return 1
    }
    # The image's pins: exactly the wheels downloaded (name-version-...whl), so that packages of
    # the venv the image does not use (dev tools) leave the build cache alone.
    (cd "$here/wheels" && ls -- *.whl) | awk -F- '{ print $1 "==" $2 }' | sort \
        >"$here/wheels/constraints-venv.txt"
}

# A digest of everything a build of the image reads: the base image, the build context (the
# paths .dockerignore allows), the host's CA certificates and the venv's packages (both copied
# in), the build settings. Stored as a label of the image, so that a later step can tell whether
# the image it finds is the one this tree would build.
image_inputs_digest() {
    local base="$1" line paths=()
    while IFS= read -r line; do
        [[ "$line" == '!'* ]] && paths+=("${line#!}")
    done <"$repo/.dockerignore"
    {
        docker image inspect --format '{{.Id}}' "$base" 2>/dev/null || echo "$base"
        printf '%s\n' "${DQN_BUILD_FLAGS:-}" "${DQN_WHEELHOUSE:-1}" "$wheels_dir"
        cat "$repo/.dockerignore"
        (cd "$repo" && find "${paths[@]%/}" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' \
            ! -path '*.egg-info/*' -print0 2>/dev/null | LC_ALL=C sort -z | xargs -0 -r sha256sum)
        cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true
        ls "$wheels_dir" 2>/dev/null || true
        "$repo/.venv/bin/pip" freeze --exclude-editable 2>/dev/null || true
    } | sha256sum | cut -c1-64
}

step_image() {
    local base args=() start size f digest
    base="$(cat "$state/base-image" 2>/dev/null || echo python:3.11-slim)"
    digest="$(image_inputs_digest "$base")"
    if [[ "${DQN_REUSE_IMAGE:-0}" == 1 ]] &&
        [[ "$(docker image inspect "$image" \
            --format '{{index .Config.Labels "dqn-sweeps.inputs"}}' 2>/dev/null)" == "$digest" ]]; then
        log "$image was built from these inputs already: not built again"
        return 0
    fi
    # Build-time inputs that must never be committed (both folders are ignored by git): the
    # host's extra CA certificates and local wheels. Only what is added here is removed after.
    ls -A "$here/wheels" "$here/extra-ca-certs" >"$state/context.before"
    trap 'remove_added_inputs' RETURN
    for f in /usr/local/share/ca-certificates/*.crt; do
        [[ -f "$f" ]] && cp "$f" "$here/extra-ca-certs/host-$(basename "$f")"
    done
    if prepare_wheelhouse "$base"; then
        args+=(--build-arg PIP_NO_INDEX=1 --build-arg TORCH_INDEX_URL=
            --build-arg CONSTRAINTS=docker/wheels/constraints-venv.txt)
    else
        for f in "$wheels_dir"/torch-*+cpu-*.whl; do
            [[ -f "$f" ]] || continue
            ln -f "$f" "$here/wheels/" 2>/dev/null || cp "$f" "$here/wheels/"
            args+=(--build-arg TORCH_INDEX_URL=)
        done
    fi
    local flags=()
    read -r -a flags <<<"${DQN_BUILD_FLAGS:-}"
    log "docker build $image (base $base) ${flags[*]}"
    start=$(date +%s)
    docker build -f "$here/Dockerfile" --build-arg BASE_IMAGE="$base" "${args[@]}" "${flags[@]}" \
        --label dqn-sweeps.inputs="$digest" -t "$image" "$repo" >"$state/build.log" 2>&1 || {
        tail -30 "$state/build.log" >&2
        log "docker build failed (log: $state/build.log)"
        return 1
    }
    size="$(docker image inspect "$image" --format '{{.Size}}')"
    # Images of earlier builds this one superseded (untagged, labelled by the Dockerfile): final
    # images, and build stages but the newest, which is the layer cache of the next build.
    docker images -q --filter dangling=true --filter label=dqn-sweeps.stage=image |
        xargs -r docker rmi >/dev/null 2>&1 || true
    docker images --filter dangling=true --filter label=dqn-sweeps.stage=build \
        --format '{{.CreatedAt}}	{{.ID}}' | sort -r | tail -n +2 | cut -f2 |
        xargs -r docker rmi >/dev/null 2>&1 || true
    printf 'build_s=%s\nsize_bytes=%s\nbase=%s\n' "$(($(date +%s) - start))" "$size" "$base" \
        >"$state/image.env"
    log "built $image in $(($(date +%s) - start)) s: $((size / 1000000)) MB"
}

remove_added_inputs() {
    local dir f
    for dir in "$here/wheels" "$here/extra-ca-certs"; do
        for f in "$dir"/* "$dir"/.[!.]*; do
            [[ -e "$f" ]] || continue
            grep -qxF "$(basename "$f")" "$state/context.before" || rm -f "$f"
        done
    done
    trap - RETURN
}

step_up() {
    "$here/make-token.sh" "$DQN_TOKEN_FILE" >/dev/null
    if is_root; then
        # Root's files are not the containers' to write: hand them the results folder and the
        # sweep's own folder (a rerun resumes in it), nothing else in it.
        chown "$DQN_UID:$DQN_GID" "$results"
        if [[ -d "$results/$(sweep_name)" ]]; then
            chown -R "$DQN_UID:$DQN_GID" "$results/$(sweep_name)"
        fi
    fi
    log "compose up: ray-head + $workers ray-worker (project $project)"
    compose up -d --scale ray-worker="$workers" ray-head ray-worker >&2
    local want=$((workers + 1)) alive=""
    for _ in $(seq 90); do
        alive="$(compose exec -T ray-head python -c 'import ray
ray.init(address="auto", logging_level="ERROR", log_to_driver=False)
print(sum(1 for n in ray.nodes() if n["Alive"]))' 2>/dev/null | tail -1)" || true
        [[ "$alive" == "$want" ]] && break
        sleep 2
    done
    if [[ "$alive" != "$want" ]]; then
        compose logs --tail 30 >&2 || true
        log "only '${alive}' of $want Ray nodes joined"
        return 1
    fi
    log "Ray cluster up: $alive nodes"
}

step_sweep() {
    log "submitting $spec to the head (ray job submit, token from the secret)"
    compose run --rm submit "/app/specs/$spec" >&2
}

sweep_name() {
    # The spec's top-level `name:` (unquoted, without a trailing comment).
    sed -n -e 's/[[:space:]]*#.*$//' -e 's/[[:space:]]*$//' \
        -e "s/^name:[[:space:]]*[\"']\{0,1\}\([^\"']*\).*/\1/p" "$repo/sweeps/specs/$spec" | head -1
}

step_check() {
    local name
    name="$(sweep_name)"
    [[ -f "$results/$name/trials.parquet" ]] || {
        log "missing $results/$name/trials.parquet"
        return 1
    }
    ls "$results/$name/plots/"* >/dev/null 2>&1 || {
        log "no plots in $results/$name/plots"
        return 1
    }
    # Read the table in the image (the host needs no Python packages).
    docker run --rm -v "$results/$name:/sweep:ro" "$image" python -c '
import pandas as pd
t = pd.read_parquet("/sweep/trials.parquet")
hosts = sorted(set(t["host"]))
print(f"{len(t)} trials, status {dict(t.status.value_counts())}, trained on {hosts}")
assert (t.status == "complete").all(), "some trials failed"
assert len(hosts) > 1, "all trials ran on one node"
' >&2
    log "results and plots in $results/$name"
}

step_down() {
    log "compose down (project $project)"
    compose --profile submit --profile gpu down --volumes --remove-orphans >&2 || true
}

run_all() {
    step_engine
    if [[ "${DQN_KEEP:-0}" != 1 ]]; then
        trap 'step_down; step_engine_stop' EXIT
    fi
    step_base
    step_image
    step_up
    step_sweep
    step_check
}

if [[ $# -eq 0 ]]; then
    run_all
    exit 0
fi
for step in "$@"; do
    case "$step" in
    engine | base | image | up | sweep | check | down) "step_$step" ;;
    engine-stop) step_engine_stop ;;
    all) run_all ;;
    *)
        echo "e2e.sh: unknown step '$step'" \
            "(engine base image up sweep check down engine-stop all)" >&2
        exit 2
        ;;
    esac
done
