#!/usr/bin/env bash
# Build a Debian bookworm base image with Python 3.11 without any image registry, for hosts
# where `docker pull` cannot reach Docker Hub (air-gapped, or behind a proxy that blocks it).
#
#   docker/build-base-image.sh [IMAGE_NAME]        (default: dqn-sweeps-base:bookworm)
#
# Needs root, debootstrap and a Debian mirror (DEBIAN_MIRROR, default http://deb.debian.org/debian).
# Then build the project image on top of it:
#   docker build -f docker/Dockerfile --build-arg BASE_IMAGE=dqn-sweeps-base:bookworm \
#       -t dqn-sweeps:cpu .
set -euo pipefail

image="${1:-dqn-sweeps-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite="${DEBIAN_SUITE:-bookworm}"
# python3-venv: the project lives in a venv (Debian's Python refuses system-wide pip installs).
# openssh-client, rsync: Ray's cluster launcher runs them inside the head node's container.
packages="python3,python3-venv,ca-certificates,bash,procps,openssh-client,rsync"

if [[ $(id -u) -ne 0 ]]; then
    echo "build-base-image.sh: debootstrap needs root (run with sudo)" >&2
    exit 2
fi
for tool in debootstrap docker tar; do
    if ! command -v "$tool" >/dev/null; then
        echo "build-base-image.sh: '$tool' not found (apt-get install debootstrap docker.io)" >&2
        exit 2
    fi
done

rootfs="$(mktemp -d "${TMPDIR:-/tmp}/dqn-rootfs.XXXXXX")"
trap 'rm -rf "$rootfs"' EXIT

echo "debootstrap $suite ($mirror) -> $rootfs" >&2
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >&2

# Slim it down: package lists, caches, docs and man pages are not needed at run time.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
    "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*.log
# The mirror debootstrap used, so that `apt-get update` works in derived images.
echo "deb $mirror $suite main" >"$rootfs/etc/apt/sources.list"

tar --numeric-owner -C "$rootfs" -c . |
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        - "$image" >/dev/null
echo "$image"
