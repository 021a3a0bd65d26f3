#!/usr/bin/env bash
# The whole suite (`make test`): lint (ruff, mypy --strict over service/ and the test fakes, and
# then shellcheck) and the unit tier once, then the integration, end-to-end, security, faults and
# fleet tiers once per engine (DOCKVOL_ENGINES, default "20.10 26.1"), each against a private
# engine that this script starts and stops again, and the deploy smoke test (deploy/smoke.sh) on
# one engine.
#
# The legs run side by side (DOCKVOL_PARALLEL=0 runs them one after the other): per engine, one
# leg runs the integration, end-to-end and fleet tiers, and the faults tier, the longest, is
# split in two legs (DOCKVOL_FAULTS_PART, tests/faults/conftest.py): the engine stopped at each
# step (ENGINE-stops), and dockvol killed at each step and the races, then the security tier
# (ENGINE-kills). Each leg has its own private engine (a faults leg's in
# DOCKVOL_ENGINE_DIR=/tmp/dockvol-engine-LEG), socket, fleet lab and ports. Most of a leg's time
# is spent waiting on its engine, so six legs on two cores take little longer than the longest. Each leg's output goes to a log that is printed whole when
# the leg ends, so they never interleave.
# Any failure, or a tier that runs no test, fails the run.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=deploy/debian.sh
. deploy/debian.sh
PY=${PY:-.venv/bin/python}
ENGINES=${DOCKVOL_ENGINES:-20.10 26.1}
SMOKE_ENGINE=${DOCKVOL_SMOKE_ENGINE:-26.1}  # the image and compose smoke test runs on this one
PARALLEL=${DOCKVOL_PARALLEL:-1}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# One line per tier ("LABEL: PYTEST'S CLOSING LINE [exit N, TIME]") in $WORK/summary, and in
# $WORK/summary-ENGINE for an engine's leg.
SUMMARY=$WORK/summary
: >"$SUMMARY"

# count WORD LINE: the number before WORD in pytest's closing line (0 when absent).
count() { echo "$2" | grep -oE "[0-9]+ $1" | grep -oE '^[0-9]+' || echo 0; }

# run LABEL PYTEST-ARGS...: run one tier, note its closing line and time; fails when the tier does.
run() {
    local label=$1 out rc start closing
    shift
    out=$(mktemp)
    start=$SECONDS
    echo "== $label"
    "$PY" -m pytest -q "$@" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    closing=$(grep -E '(passed|failed|error|no tests ran)' "$out" | tail -n 1)
    echo "$label: $closing [exit $rc, $((SECONDS - start)) s]" >>"$SUMMARY"
    rm -f "$out"
    [ "$rc" = 0 ]
}

# note LABEL: a step other than a pytest tier, for the summary.
note() { echo "$1" >>"$SUMMARY"; }

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
    if [ "$rc" = 0 ]; then note "lint: passed"; else note "lint: FAILED"; fi
    return "$rc"
}

# finish [WHY]: print the summary and the totals; exit 1 when anything failed.
finish() {
    local passed=0 failed=0 line closing
    while IFS= read -r line; do
        closing=${line#*: }
        passed=$((passed + $(count passed "$closing")))
        failed=$((failed + $(count failed "$closing") + $(count error "$closing")))
    done < <(cat "$WORK"/summary*)
    echo
    echo "== summary${1:+ ($1)}"
    cat "$WORK"/summary*
    echo "total: $passed passed, $failed failed, $((SECONDS / 60)) min $((SECONDS % 60)) s"
    if cat "$WORK"/summary* | grep -qE 'FAILED|\[exit [1-9]|did not start'; then exit 1; fi
    exit 0
}

# The legs: ENGINE (integration, e2e, fleet, smoke), ENGINE-stops and ENGINE-kills (faults,
# security), for each engine.
LEGS=()
for engine in $ENGINES; do LEGS+=("$engine" "$engine-stops" "$engine-kills"); done

# engine_of LEG: the engine version a leg runs on.
engine_of() { echo "${1%%-*}"; }

# with_engine LEG COMMAND...: run COMMAND with the leg's private engine selected (engine.sh and the
# faults tier's restarts read DOCKVOL_ENGINE_DIR; the other legs use engine.sh's default).
with_engine() {
    local leg=$1
    shift
    if [ "$leg" != "$(engine_of "$leg")" ]; then
        DOCKVOL_ENGINE_DIR=/tmp/dockvol-engine-$leg "$@"
    else
        "$@"
    fi
}

# leg LEG: its tiers, against its private engine started by prepare.
leg() {
    local engine version ok=0 SUMMARY=$WORK/summary-$1
    engine=$(engine_of "$1")
    [ "$1" != "$engine" ] && export DOCKVOL_ENGINE_DIR=/tmp/dockvol-engine-$1
    export DOCKVOL_TEST_DOCKER_HOST DOCKVOL_TEST_ENGINE=$engine
    DOCKVOL_TEST_DOCKER_HOST=$(deploy/engine.sh host "$engine")
    version=$(docker -H "$DOCKVOL_TEST_DOCKER_HOST" version --format '{{.Server.Version}}, API {{.Server.APIVersion}}')
    case $1 in
        *-stops)
            DOCKVOL_FAULTS_PART=engine-stops run "faults, the engine stopped at each step, on engine $engine ($version)" tests/faults || ok=1
            return "$ok"
            ;;
        *-kills)
            DOCKVOL_FAULTS_PART=kills run "faults, dockvol killed at each step, and races, on engine $engine ($version)" tests/faults || ok=1
            run "security on engine $engine ($version)" tests/security || ok=1
            return "$ok"
            ;;
    esac
    run "integration on engine $engine ($version)" tests/integration || ok=1
    run "end-to-end on engine $engine ($version)" tests/e2e || ok=1
    run "fleet on engine $engine ($version): a three-node Swarm" tests/fleet || ok=1
    if [ "$engine" = "$SMOKE_ENGINE" ]; then
        echo "== deploy smoke on engine $engine: image, HEALTHCHECK, compose"
        local start=$SECONDS
        if deploy/smoke.sh "$engine"; then
            note "deploy smoke on engine $engine: passed [$((SECONDS - start)) s]"
        else
            note "deploy smoke on engine $engine: FAILED"
            ok=1
        fi
    fi
    return "$ok"
}

# prepare: what the legs would otherwise install at the same time (apt and dpkg take one caller at
# a time), and each leg's engine.
prepare() {
    ensure_packages dockerd=docker.io docker=docker.io busybox-static ip=iproute2 restic=restic \
        docker-compose=docker-compose debootstrap=debootstrap node=nodejs npm=npm || return 1
    local leg engine
    for leg in "${LEGS[@]}"; do
        engine=$(engine_of "$leg")
        # engine 26.1's dockerd, fetched once for its first leg, serves the others too
        if [ "$leg" != "$engine" ] && [ -d "/tmp/dockvol-engine-$engine/pkg" ]; then
            mkdir -p "/tmp/dockvol-engine-$leg"
            [ -e "/tmp/dockvol-engine-$leg/pkg" ] || ln -s "/tmp/dockvol-engine-$engine/pkg" "/tmp/dockvol-engine-$leg/pkg"
        fi
        with_engine "$leg" deploy/engine.sh status "$engine" && touch "$WORK/was-running-$leg"
        if ! with_engine "$leg" deploy/engine.sh start "$engine"; then
            note "engine $engine ($leg): did not start"
            return 1
        fi
    done
}

lint || finish "stopped early: lint failed"
# restic is the backup engine: the unit tier runs it against repositories in temporary folders.
ensure_packages restic=restic || finish "stopped early: restic could not be installed"
# stop_engines: each leg's engine, unless it ran before this run.
stop_engines() {
    for leg in "${LEGS[@]}"; do
        [ -e "$WORK/was-running-$leg" ] || with_engine "$leg" deploy/engine.sh stop "$(engine_of "$leg")"
    done
}

# The engines start (prepare) while the unit tier runs: the tier uses no engine, and runs on every
# core (pytest-xdist); starting an engine is mostly waiting.
prepare >"$WORK/prepare.log" 2>&1 &
preparing=$!
# Every unit test, those marked slow too (`make unit` and `make check` skip them).
run "unit (in-memory engine)" tests/unit -n auto
unit=$?
wait "$preparing"
prepared=$?
echo "== engines prepared beside the unit tier (exit $prepared)"
cat "$WORK/prepare.log"
if [ "$unit" != 0 ]; then
    stop_engines
    finish "stopped early: unit failed"
fi
[ "$prepared" = 0 ] || finish "stopped early: the engines could not be prepared"

pids=()
for leg in "${LEGS[@]}"; do
    if [ "$PARALLEL" = 1 ]; then
        echo "== leg $leg: its tiers run in the background (log printed when they end)"
        leg "$leg" >"$WORK/leg-$leg.log" 2>&1 &
        pids+=("$!")
    else
        leg "$leg"
    fi
done
# Each leg's log is printed when it ends (in the order of LEGS).
if [ "$PARALLEL" = 1 ]; then
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}"
        echo
        echo "==== leg ${LEGS[$i]}: the whole leg"
        cat "$WORK/leg-${LEGS[$i]}.log"
    done
fi
stop_engines
finish
