#!/usr/bin/env bash
# Make the Ray authentication token of the containerised cluster, once: 256 random bits in hex
# (the format of `ray get-auth-token --generate`), in a file only its owner can read.
#
#   docker/make-token.sh [FILE]          (default: docker/.secrets/ray_token)
#
# An existing non-empty token is kept, so running it again is harmless. The file is ignored by
# git and the build context; compose hands it to the containers as the secret `ray_token`
# (mounted at /run/secrets/ray_token, read through RAY_AUTH_TOKEN_PATH). The containers run as
# $DQN_UID:$DQN_GID (default 1000:1000): when root makes the token it gives the file to that
# user and lets that group read it too (mode 640), because Ray's cluster launcher, logged in as
# root on a node, hands every file it copies there to root and keeps only the group.
# To talk to the cluster from the host (ray job submit, the dashboard):
#   export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$PWD/docker/.secrets/ray_token"
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
token_file="${1:-$here/.secrets/ray_token}"

mkdir -p "$(dirname "$token_file")"
if [[ ! -s "$token_file" ]]; then
    umask 077
    tmp="$(mktemp "$token_file.XXXXXX")"
    # 32 bytes from the kernel's CSPRNG, as 64 hex digits, no newline.
    od -An -vtx1 -N32 /dev/urandom | tr -d ' \n' >"$tmp"
    if [[ $(wc -c <"$tmp") -ne 64 ]]; then
        rm -f "$tmp"
        echo "make-token.sh: could not read 32 random bytes" >&2
        exit 1
    fi
    mv "$tmp" "$token_file"
    echo "make-token.sh: new Ray auth token in $token_file" >&2
fi
if [[ $(id -u) -eq 0 ]]; then
    chown "${DQN_UID:-1000}:${DQN_GID:-1000}" "$token_file"
    chmod 0640 "$token_file"
else
    chmod 0600 "$token_file"
fi
echo "$token_file"
