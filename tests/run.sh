#!/usr/bin/env bash
# The whole suite (`make test`): lint (ruff, mypy --strict over service/ and the test fakes, and
# then shellcheck) and the unit tier once, then the integration, end-to-end, security, faults and
# fleet tiers once per engine (DOCKVOL_ENGINES, default "20.10 26.1"), each against a private
# engine that this script starts and stops again, and the deploy smoke test (deploy/smoke.sh) on
# one engine.
# Any failure, or a tier that runs no test, fails the run.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=deploy/debian.sh
. deploy/debian.sh
PY=${PY:-.venv/bin/python}
ENGINES=${DOCKVOL_ENGINES:-20.10 26.1}
SMOKE_ENGINE=${DOCKVOL_SMOKE_ENGINE:-26.1}  # the image and compose smoke test runs on this one
summary=()
failed=0
passed_total=0
failed_total=0

# count WORD LINE: the number before WORD in pytest's closing line (0 when absent).
count() { echo "$2" | grep -oE "[0-9]+ $1" | grep -oE '^[0-9]+' || echo 0; }

# run LABEL PYTEST-ARGS...: run one tier and remember its closing line.
run() {
    local label=$1 out rc
    shift
    out=$(mktemp)
    echo "== $label"
    "$PY" -m pytest -q "$@" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    local closing
    closing=$(grep -E '(passed|failed|error|no tests ran)' "$out" | tail -n 1)
    summary+=("$label: $closing [exit $rc]")
    passed_total=$((passed_total + $(count passed "$closing")))
    failed_total=$((failed_total + $(count failed "$closing") + $(count error "$closing")))
    rm -f "$out"
    [ "$rc" = 0 ] || failed=1
}

# lint: ruff, mypy (settings in pyproject.toml: --strict over service/ and tests/fakes/) and the
# shell scripts' shellcheck; their findings fail the run like a test.
lint() {
    local rc=0
    echo "== lint: ruff check, ruff format --check, mypy --strict (service/, tests/fakes/), shellcheck"
    "$(dirname "$PY")/ruff" check service tests deploy/*.py || rc=1
    "$(dirname "$PY")/ruff" format --check service tests deploy/*.py || rc=1
    "$(dirname "$PY")/mypy" || rc=1
    ensure_packages shellcheck=shellcheck || rc=1
    shellcheck deploy/*.sh tests/*.sh tests/benchmarks/*.sh tests/fleet/*.sh .ci/run || rc=1
    if [ "$rc" = 0 ]; then summary+=("lint: passed"); else summary+=("lint: FAILED"); failed=1; fi
}

# The engine tiers take most of the run: a failed lint or unit tier ends it here, since nothing is
# learned from them after it.
stop_early() {
    echo
    echo "== summary (stopped early: lint or unit failed)"
    printf '%s\n' "${summary[@]}"
    echo "total: $passed_total passed, $failed_total failed"
    exit 1
}

lint
# Every unit test, those marked slow too (`make unit` and `make check` skip them).
run "unit (in-memory engine)" tests/unit
[ "$failed" = 0 ] || stop_early

for engine in $ENGINES; do
    was_running=""
    deploy/engine.sh status "$engine" && was_running=1
    if ! deploy/engine.sh start "$engine"; then
        summary+=("engine $engine: did not start")
        failed=1
        continue
    fi
    export DOCKVOL_TEST_DOCKER_HOST
    DOCKVOL_TEST_DOCKER_HOST=$(deploy/engine.sh host "$engine")
    version=$(docker -H "$DOCKVOL_TEST_DOCKER_HOST" version --format '{{.Server.Version}}, API {{.Server.APIVersion}}')
    run "integration on engine $engine ($version)" tests/integration
    run "end-to-end on engine $engine ($version)" tests/e2e
    run "security on engine $engine ($version)" tests/security
    export DOCKVOL_TEST_ENGINE=$engine
    run "faults on engine $engine ($version)" tests/faults
    run "fleet on engine $engine ($version): a three-node Swarm" tests/fleet
    if [ "$engine" = "$SMOKE_ENGINE" ]; then
        echo "== deploy smoke on engine $engine: image, HEALTHCHECK, compose"
        if deploy/smoke.sh "$engine"; then
            summary+=("deploy smoke on engine $engine: passed")
        else
            summary+=("deploy smoke on engine $engine: FAILED")
            failed=1
        fi
    fi
    [ -n "$was_running" ] || deploy/engine.sh stop "$engine"
done

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
echo "total: $passed_total passed, $failed_total failed"
exit "$failed"
