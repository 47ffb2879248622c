#!/bin/sh
# Entrypoint of the dqn-sweeps image: run the command, with a writable HOME.
# Ray writes under $HOME (~/.ray: the token a local instance generates). With a read-only root
# filesystem (`docker run --read-only --tmpfs /tmp`), or a uid other than the image's user
# (compose `user:`), the image's home is not writable: use one under /tmp instead.
set -eu
if [ ! -w "${HOME:-/nonexistent}" ]; then
    HOME=/tmp/home
    export HOME
    mkdir -p "$HOME"
fi
exec "$@"
