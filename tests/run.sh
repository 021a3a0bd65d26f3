#!/usr/bin/env bash
# The whole suite (`make test`): the unit tier, then the integration and end-to-end tiers
# against a private engine that this script starts (and stops again if it started it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

echo "== unit tier (in-memory engine)"
"$PY" -m pytest tests/unit -q

was_running=""
deploy/engine.sh status && was_running=1
deploy/engine.sh start
[ -n "$was_running" ] || trap 'deploy/engine.sh stop' EXIT
export DOCKVOL_TEST_DOCKER_HOST
DOCKVOL_TEST_DOCKER_HOST=$(deploy/engine.sh host)
api=$(docker -H "$DOCKVOL_TEST_DOCKER_HOST" version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')

echo "== integration tier (engine $api)"
"$PY" -m pytest tests/integration -q

echo "== end-to-end tier (gunicorn, engine $api)"
"$PY" -m pytest tests/e2e -q
