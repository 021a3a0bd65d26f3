#!/usr/bin/env bash
# dockvol's image, built where no image registry is reachable (from deploy/base-image.sh's base):
#   deploy/build-image.sh DOCKER_HOST [TAG]      (TAG default dockvol:latest)
# pip inside the build uses the host's network to reach the package index.
set -euo pipefail
cd "$(dirname "$0")/.."
HOST=$1
TAG=${2:-dockvol:latest}
BASE=dockvol-base/debian-python:12
deploy/base-image.sh "$HOST" "$BASE"
echo "build-image: building $TAG" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
docker -H "$HOST" build -q --network host --build-arg BASE_IMAGE="$BASE" -t "$TAG" . >/dev/null 2>"$log" \
    || { cat "$log" >&2; echo "build-image: FAILED" >&2; exit 1; }
