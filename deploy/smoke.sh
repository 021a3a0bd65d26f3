#!/usr/bin/env bash
# Smoke test of dockvol's image and compose file against a private engine (run by `make test`):
#   deploy/smoke.sh [ENGINE]     (ENGINE: 20.10 or 26.1, default 20.10; the engine must be running)
# Builds the image (from a locally made base image: no registry needed), runs it with the engine
# socket, and checks /healthz, /readyz, one authenticated call and the image's HEALTHCHECK; then
# validates docker-compose.yml with Debian's docker-compose and brings the stack up.
# dockvol's own container uses the host's network here so that every request goes to loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/debian.sh
. deploy/debian.sh
ENGINE=${1:-20.10}
HOST=$(deploy/engine.sh host "$ENGINE")
SOCK=${HOST#unix://}
D=(docker -H "$HOST")
IMAGE=dockvol:smoke
say() { echo "smoke: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

work=$(mktemp -d)
name=dockvol-smoke-$$
cleanup() {
    "${D[@]}" rm -f "$name" >/dev/null 2>&1 || true
    if [ -f "$work/compose.yml" ]; then
        DOCKER_HOST=$HOST docker-compose -p "dockvolsmoke$$" -f "$work/compose.yml" down >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() {  # URL: 200 within 30 s
    for _ in $(seq 1 60); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0
        sleep 0.5
    done
    return 1
}

deploy/build-image.sh "$HOST" "$IMAGE" || fail "image build"

token=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
python3 - "$token" "$work/tokens.json" <<'PY'
import hashlib, json, sys
json.dump([{"name": "smoke", "sha256": hashlib.sha256(sys.argv[1].encode()).hexdigest(), "scopes": ["read"]}],
          open(sys.argv[2], "w"))
PY
chmod 644 "$work/tokens.json"
gid=$(stat -c %g "$SOCK")
port=$(free_port)
say "running $IMAGE on 127.0.0.1:$port"
"${D[@]}" run -d --name "$name" --network host --read-only --tmpfs /tmp --group-add "$gid" \
    --security-opt no-new-privileges --cap-drop ALL --health-interval 2s --health-start-period 1s \
    -v "$SOCK:/var/run/docker.sock" -v "$work/tokens.json:/run/secrets/tokens.json:ro" \
    -e DOCKVOL_TOKENS_FILE=/run/secrets/tokens.json -e DOCKVOL_LISTEN="127.0.0.1:$port" "$IMAGE" >/dev/null
base=http://127.0.0.1:$port
wait_for "$base/healthz" || { "${D[@]}" logs "$name" >&2; fail "/healthz"; }
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")" = 200 ] || fail "/readyz"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/api/v1/volumes")" = 401 ] || fail "no token should be 401"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$base/api/v1/volumes")" = 200 ] \
    || fail "an authenticated call"
[ "$("${D[@]}" inspect -f '{{.Config.User}}' "$name")" = dockvol ] || fail "the image must run as dockvol"
for _ in $(seq 1 30); do
    status=$("${D[@]}" inspect -f '{{.State.Health.Status}}' "$name")
    [ "$status" = healthy ] && break
    sleep 1
done
[ "$status" = healthy ] || fail "HEALTHCHECK says $status"
say "image: /healthz, /readyz, 401 without a token, 200 with one, runs as dockvol, HEALTHCHECK healthy"
"${D[@]}" rm -f "$name" >/dev/null

ensure_packages docker-compose=docker-compose || fail "no docker-compose"
export DOCKER_HOST=$HOST DOCKER_GID=$gid DOCKVOL_BIND_ROOT=$work/bindroot
mkdir -p "$DOCKVOL_BIND_ROOT"
port=$(free_port)
docker-compose -f docker-compose.yml config -q || fail "docker-compose.yml does not validate"
say "docker-compose.yml validates"
# The same service, run with the host's network instead of a published port (so requests go to
# loopback only), the private engine's socket, this run's tokens and the image built above.
/usr/bin/python3 - "$PWD" "$work" "$port" "$SOCK" "$IMAGE" <<'PY'
import sys, yaml
root, work, port, sock, image = sys.argv[1:]
doc = yaml.safe_load(open(f"{root}/docker-compose.yml"))
svc = doc["services"]["dockvol"]
for key in ("ports", "build"):
    svc.pop(key, None)
svc.update(image=image, network_mode="host", env_file=[f"{root}/{f}" for f in svc.get("env_file", [])])
svc["environment"]["DOCKVOL_LISTEN"] = f"127.0.0.1:{port}"
svc["volumes"] = [v for v in svc["volumes"] if not v.endswith(":/var/run/docker.sock")] + [f"{sock}:/var/run/docker.sock"]
doc["secrets"]["dockvol_tokens"]["file"] = f"{work}/tokens.json"
yaml.safe_dump(doc, open(f"{work}/compose.yml", "w"))
PY
if docker-compose -p "dockvolsmoke$$" -f "$work/compose.yml" up -d --no-build >"$work/up.log" 2>&1 \
    && wait_for "http://127.0.0.1:$port/readyz"; then
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/volumes")" = 200 ] \
        || fail "an authenticated call through the compose stack"
    say "compose stack: up, ready, answers an authenticated call"
else
    tail -n 20 "$work/up.log" >&2
    fail "the compose stack did not come up against the private engine"
fi
say "passed"
