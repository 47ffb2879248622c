#!/usr/bin/env bash
# An SSH server of its own on this machine's loopback, for Ray's cluster launcher: the launcher
# reaches every node, this machine too, with `ssh USER@IP` on port 22. For trying
# docker/cluster-local.yaml where no SSH server runs (a container, a CI machine), and for the
# launcher's end-to-end test. Where sshd already runs, you do not need this (docs/clusters.md).
#
#   docker/local-sshd.sh start [STATE_DIR]   sshd on 127.0.0.1:22; prints the private key's path
#   docker/local-sshd.sh stop [STATE_DIR]    stops that sshd and the sessions it opened
#
# STATE_DIR (default build/local-sshd) holds everything it makes: a host key, a key pair for
# you (ssh_key, ssh_key.pub) that only this server accepts, its config, pid and log. Nothing in
# /etc/ssh or ~/.ssh is read or changed. It listens on 127.0.0.1 only and takes keys only; it
# lets in the user who started it (root: sshd must run as root, and port 22 is privileged).
# Installs openssh-server and rsync with apt-get where they are missing (the launcher needs
# rsync on both ends). Exit 77, with the reason in STATE_DIR/skip-reason, where it cannot run.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
action="${1:-}"
state="${2:-$(dirname "$here")/build/local-sshd}"
sshd_bin=/usr/sbin/sshd

log() { printf '[local-sshd %s] %s\n' "$(date +%T)" "$*" >&2; }
skip() {
    log "SKIP: $*"
    echo "$*" >"$state/skip-reason"
    exit 77
}

port_22_open() { (exec 3<>/dev/tcp/127.0.0.1/22) 2>/dev/null; }

install_missing() {
    local missing=()
    [[ -x "$sshd_bin" ]] || missing+=(openssh-server)
    command -v ssh-keygen >/dev/null && command -v ssh >/dev/null || missing+=(openssh-client)
    command -v rsync >/dev/null || missing+=(rsync)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    command -v apt-get >/dev/null || skip "${missing[*]} missing, and no apt-get to install them"
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Debian starts a package's service on install where an init system runs: a system sshd on
    # 0.0.0.0:22 is not wanted here. policy-rc.d (exit 101: "not allowed") stops that, for the
    # install only, and only where the machine has no policy of its own.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
    fi
    local ok=0
    # The package lists may be absent (a fresh image) or stale: update once if the install fails.
    apt-get install -y -qq "${missing[@]}" >"$state/apt.log" 2>&1 ||
        { apt-get update -qq >>"$state/apt.log" 2>&1 &&
            apt-get install -y -qq "${missing[@]}" >>"$state/apt.log" 2>&1; } || ok=1
    [[ $made_policy -eq 0 ]] || rm -f "$policy"
    [[ $ok -eq 0 ]] || skip "could not install ${missing[*]} (see $state/apt.log)"
}

# Every process below the given one (the sessions sshd forked for logins), deepest last.
descendants() {
    local pid child
    for pid in "$@"; do
        for child in $(cat "/proc/$pid/task/"*/children 2>/dev/null); do
            echo "$child"
            descendants "$child"
        done
    done
}

start() {
    mkdir -p "$state"
    chmod 700 "$state"
    rm -f "$state/skip-reason"
    [[ $(id -u) -eq 0 ]] || skip "sshd on port 22 needs root"
    if [[ -f "$state/sshd.pid" ]] && kill -0 "$(cat "$state/sshd.pid")" 2>/dev/null; then
        log "already running (pid $(cat "$state/sshd.pid"))"
        echo "$state/ssh_key"
        return 0
    fi
    install_missing
    if port_22_open; then
        skip "an SSH server already listens on 127.0.0.1:22 (use it: docs/clusters.md)"
    fi

    [[ -f "$state/host_key" ]] || ssh-keygen -q -t ed25519 -N '' -C dqn-local-sshd-host -f "$state/host_key"
    [[ -f "$state/ssh_key" ]] || ssh-keygen -q -t ed25519 -N '' -C dqn-local-sshd-client -f "$state/ssh_key"
    # This key is good for logins from the loopback only.
    printf 'from="127.0.0.1" %s\n' "$(cat "$state/ssh_key.pub")" >"$state/authorized_keys"
    chmod 600 "$state/authorized_keys"
    local user
    user="$(id -un)"
    cat >"$state/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port 22
HostKey $state/host_key
PidFile $state/sshd.pid
AuthorizedKeysFile $state/authorized_keys
AllowUsers $user
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The state folder may sit under /tmp, whose modes StrictModes refuses; the files are ours (700).
StrictModes no
X11Forwarding no
PermitTunnel no
# Ray's launcher opens a master connection and runs its commands as sessions over it.
MaxSessions 32
EOF
    # sshd's privilege-separation directory; Debian's service makes it, so a bare sshd must.
    if [[ ! -d /run/sshd ]]; then
        mkdir -p /run/sshd
        touch "$state/made-run-sshd"
    fi
    "$sshd_bin" -t -f "$state/sshd_config" || skip "sshd rejects its config (sshd -t)"
    log "starting sshd on 127.0.0.1:22 for $user (log: $state/sshd.log)"
    # Its own output to the log: the caller may be reading ours until it closes.
    setsid "$sshd_bin" -D -f "$state/sshd_config" -E "$state/sshd.log" </dev/null >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 50); do
        if ssh -q -i "$state/ssh_key" -o BatchMode=yes -o StrictHostKeyChecking=no \
            -o UserKnownHostsFile=/dev/null -o ConnectTimeout=2 "$user@127.0.0.1" true 2>/dev/null; then
            echo "$pid" >"$state/sshd.pid"
            log "sshd (pid $pid) lets $user in with $state/ssh_key"
            echo "$state/ssh_key"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    tail -5 "$state/sshd.log" >&2 || true
    kill "$pid" 2>/dev/null || true
    skip "sshd did not let a login in (see $state/sshd.log)"
}

stop() {
    [[ -f "$state/sshd.pid" ]] || return 0
    local pid sessions
    pid="$(cat "$state/sshd.pid")"
    # The listener first (no new logins), then the sessions it had forked, which outlive it.
    sessions="$(descendants "$pid")"
    log "stopping sshd (pid $pid) and its sessions"
    kill "$pid" 2>/dev/null || true
    # shellcheck disable=SC2086
    [[ -z "$sessions" ]] || kill $sessions 2>/dev/null || true
    for _ in $(seq 25); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    rm -f "$state/sshd.pid"
    if [[ -f "$state/made-run-sshd" ]]; then
        rmdir /run/sshd 2>/dev/null || true
        rm -f "$state/made-run-sshd"
    fi
}

case "$action" in
start) start ;;
stop) stop ;;
*)
    echo "usage: local-sshd.sh start|stop [STATE_DIR]" >&2
    exit 2
    ;;
esac
