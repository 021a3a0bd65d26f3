# dockvol: `make run` starts the service, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test check unit integration e2e security faults fleet lint lock bench openapi venv clean

venv: $(VENV)/.installed

# Every dependency comes pinned with its hashes from requirements/ (`make lock` refreshes them).
$(VENV)/.installed: pyproject.toml requirements/test.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/test.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

# Pin every dependency of pyproject.toml, with hashes: test.txt (make) and runtime.txt (the image),
# the image's held to the tests' versions (-c), so what is tested is what ships.
LOCK = .lockenv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-trusted-host --no-emit-find-links
lock:
	$(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet --disable-pip-version-check pip-tools
	$(LOCK) --upgrade --extra test -o requirements/test.txt pyproject.toml
	$(LOCK) --upgrade -c requirements/test.txt -o requirements/runtime.txt pyproject.toml

run: venv
	deploy/run.sh

test: venv
	tests/run.sh

bench: venv
	tests/benchmarks/run.sh

# The unit tier but its tests marked slow (over about 1.5 s each); `make test` runs them too.
unit: venv
	$(BIN)/python -m pytest tests/unit -q -n auto -m "not slow"

# The inner loop: lint, the unit tier and one engine's integration tier.
check: lint unit integration

# One engine tier against one private engine (ENGINE=20.10 or 26.1), started if it is not running
# and left running for the next call (`deploy/engine.sh stop ENGINE` stops it).
ENGINE ?= 20.10
integration e2e security faults fleet: venv
	deploy/engine.sh start $(ENGINE)
	DOCKVOL_TEST_DOCKER_HOST=$$(deploy/engine.sh host $(ENGINE)) DOCKVOL_TEST_ENGINE=$(ENGINE) \
		$(BIN)/python -m pytest tests/$@ -q

lint: venv
	$(BIN)/ruff check service tests deploy/*.py
	$(BIN)/ruff format --check service tests deploy/*.py
	$(BIN)/mypy
	shellcheck deploy/*.sh tests/*.sh tests/benchmarks/*.sh tests/fleet/*.sh .ci/run

openapi: venv
	$(BIN)/flask --app 'service.app:create_app()' openapi write --format=json openapi/openapi.json

clean:
	rm -rf $(VENV) .lockenv .pytest_cache .mypy_cache *.egg-info
