# dockvol: `make run` starts the service, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test unit lint bench openapi venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

run: venv
	deploy/run.sh

test: venv
	tests/run.sh

bench: venv
	tests/benchmarks/run.sh

unit: venv
	$(BIN)/python -m pytest tests/unit -q

lint: venv
	$(BIN)/ruff check service tests deploy/*.py
	$(BIN)/ruff format --check service tests deploy/*.py
	shellcheck deploy/*.sh tests/*.sh tests/benchmarks/*.sh .ci/run

openapi: venv
	$(BIN)/flask --app 'service.app:create_app()' openapi write --format=json openapi/openapi.json

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info
