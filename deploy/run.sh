#!/usr/bin/env bash
# `make run`: dockvol under gunicorn on DOCKVOL_LISTEN (default 127.0.0.1:8080).
# Uses DOCKER_HOST when an engine answers there, else starts the private engine (deploy/engine.sh).
# An engine with no bridge network (the private one) gives containers network none.
# With no tokens configured (and auth not disabled) it makes one, once, under DOCKVOL_RUN_STATE
# (default .dockvol/; the README's end-to-end test points it elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/debian.sh
. deploy/debian.sh
BIN=.venv/bin
STATE=${DOCKVOL_RUN_STATE:-.dockvol}
LISTEN=${DOCKVOL_LISTEN:-127.0.0.1:8080}

engine_answers() {
    "$BIN/python" - <<'PY' 2>/dev/null
import docker, sys
try:
    docker.from_env(timeout=3).ping()
except Exception:
    sys.exit(1)
PY
}

engine_has_bridge() {
    "$BIN/python" - <<'PY' 2>/dev/null
import docker, sys
try:
    docker.from_env(timeout=3).networks.get("bridge")
except Exception:
    sys.exit(1)
PY
}

if ! engine_answers; then
    echo "run: no engine answers at ${DOCKER_HOST:-the default socket}; starting the private engine" >&2
    deploy/engine.sh status || trap 'deploy/engine.sh stop' EXIT  # stop it afterwards only if we start it
    deploy/engine.sh start
    export DOCKER_HOST
    DOCKER_HOST=$(deploy/engine.sh host)
fi

# The private engine (whether this script started it or it was running) has no bridge network:
# containers get network none there.
if ! engine_has_bridge; then
    echo "run: the engine has no bridge network; containers get network none" >&2
    export DOCKVOL_DEFAULT_NETWORK=${DOCKVOL_DEFAULT_NETWORK:-none}
    export DOCKVOL_ALLOWED_NETWORKS=${DOCKVOL_ALLOWED_NETWORKS:-'["none"]'}
fi

if [ -z "${DOCKVOL_TOKENS:-}${DOCKVOL_TOKENS_FILE:-}" ] && [ "${DOCKVOL_AUTH_DISABLED:-false}" != true ]; then
    mkdir -p "$STATE"
    chmod 700 "$STATE"
    # The operator's token (project *), and one per project of DOCKVOL_PROJECTS (scope write):
    # each made once, kept in $STATE/token and $STATE/token-PROJECT.
    "$BIN/python" - "$STATE" <<'PY'
import hashlib, json, os, secrets, sys
state = sys.argv[1]
path = os.path.join(state, "tokens.json")
entries = json.load(open(path)) if os.path.exists(path) else []
wanted = [("local-admin", "token", ["admin"], "*")]
projects = json.loads(os.environ.get("DOCKVOL_PROJECTS") or "{}")
wanted += [(f"local-{p}", f"token-{p}", ["write"], p) for p in sorted(projects)]
old = os.umask(0o077)
for name, file, scopes, project in wanted:
    if any(e["name"] == name and e.get("project") == project for e in entries):
        continue
    token = secrets.token_urlsafe(32)
    with open(os.path.join(state, file), "w") as f:
        f.write(token + "\n")
    entries = [e for e in entries if e["name"] != name]
    entries.append({"name": name, "sha256": hashlib.sha256(token.encode()).hexdigest(), "scopes": scopes, "project": project})
    print(f"run: made a token with scope {scopes[0]} in project {project}; it is in {state}/{file}", file=sys.stderr)
with open(path, "w") as f:
    json.dump(entries, f)
os.umask(old)
PY
    export DOCKVOL_TOKENS_FILE=$STATE/tokens.json
    cat >&2 <<MSG
run: try it:
  TOKEN=\$(cat $STATE/token)
  curl -s -H "Authorization: Bearer \$TOKEN" http://$LISTEN/api/v1/volumes
MSG
fi

if [ -z "${DOCKVOL_BIND_ROOTS:-}" ]; then
    # A development bind root under which the README's (and the seed's) examples lie: /data.
    export DOCKVOL_BIND_ROOTS='["/data"]'
    if [ ! -d /data ]; then
        mkdir -m 755 /data 2>/dev/null || echo "run: could not make /data; bind mounts will be refused" >&2
    fi
    echo "run: bind sources may lie under /data (DOCKVOL_BIND_ROOTS)" >&2
fi

# Backups: restic (Debian's), the state dir beside the token, and a development backup root, /backups.
command -v restic >/dev/null 2>&1 || ensure_packages restic=restic || echo "run: no restic; backups will fail" >&2
case $STATE in /*) state_root=$STATE ;; *) state_root=$PWD/$STATE ;; esac
export DOCKVOL_STATE_DIR=${DOCKVOL_STATE_DIR:-$state_root/state}
if [ -z "${DOCKVOL_BACKUP_ROOTS:-}" ]; then
    export DOCKVOL_BACKUP_ROOTS='["/backups"]'
    if [ ! -d /backups ]; then
        mkdir -m 755 /backups 2>/dev/null || echo "run: could not make /backups; repositories will be refused" >&2
    fi
    echo "run: backup repositories may lie under /backups (DOCKVOL_BACKUP_ROOTS)" >&2
fi

"$BIN/gunicorn" -c deploy/gunicorn.conf.py 'service.app:create_app()' &
gunicorn=$!
# A TERM (or an INT sent to this script alone) stops gunicorn gracefully. Ctrl-C at a terminal
# reaches gunicorn's master too, which then stops at once. Either way, the EXIT trap then stops
# the engine this script started.
trap 'kill -TERM "$gunicorn" 2>/dev/null; wait "$gunicorn"; exit 0' TERM INT
wait "$gunicorn"
