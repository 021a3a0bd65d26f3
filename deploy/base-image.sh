#!/usr/bin/env bash
# A Debian 12 image with Python, made here with debootstrap and `docker import`, for building
# dockvol's image where no image registry is reachable:
#   deploy/base-image.sh DOCKER_HOST [REF]      (REF default dockvol-base/debian-python:12)
# It carries this machine's CA bundle, so pip inside a build reaches the package index the same
# way pip does here. Nothing is done when the engine already holds REF.
set -euo pipefail
HOST=$1
REF=${2:-dockvol-base/debian-python:12}
# shellcheck source=deploy/debian.sh
. "$(dirname "$0")/debian.sh"
say() { echo "base-image: $*" >&2; }

docker -H "$HOST" image inspect "$REF" >/dev/null 2>&1 && exit 0
ensure_packages debootstrap=debootstrap
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
say "debootstrap bookworm (python3, venv) into $root"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$(debian_uri)" >"$root.log" 2>&1 \
    || { tail -n 20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker -H "$HOST" import \
    --change 'ENV LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1' \
    --change 'CMD ["python3"]' - "$REF" >/dev/null
say "imported $REF"
