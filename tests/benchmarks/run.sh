#!/usr/bin/env bash
# `make bench`: dockvol next to the raw engine, on a private engine (not part of `make test`).
#   DOCKVOL_BENCH_ENGINE  20.10 or 26.1 (default 26.1)
#   DOCKVOL_BENCH_MIB     size of the volume exported and imported (default 1024)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=$PWD/.venv/bin/python
ENGINE=${DOCKVOL_BENCH_ENGINE:-26.1}
was_running=""
deploy/engine.sh status "$ENGINE" && was_running=1
deploy/engine.sh start "$ENGINE"
[ -n "$was_running" ] || trap 'deploy/engine.sh stop "$ENGINE"' EXIT
export DOCKVOL_TEST_DOCKER_HOST
DOCKVOL_TEST_DOCKER_HOST=$(deploy/engine.sh host "$ENGINE")
echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -m), $(python3 --version)"
cd tests/benchmarks
"$PY" bench_api.py "$@"
"$PY" bench_volume_data.py --mib "${DOCKVOL_BENCH_MIB:-1024}"
"$PY" bench_projects.py
"$PY" bench_fleet.py
"$PY" bench_swarm.py --engine "$ENGINE"
