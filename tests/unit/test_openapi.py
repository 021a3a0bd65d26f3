"""The committed spec is what the code generates, and every operation is documented."""

from __future__ import annotations

import json
import pathlib

import pytest

from service.app import create_app
from service.config import Settings
from tests.fakes.memory import InMemoryEngine

COMMITTED = pathlib.Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


@pytest.fixture(scope="module")
def spec():
    app = create_app(Settings(), engine=InMemoryEngine())
    return app.test_client().get("/api/openapi.json").get_json()


def operations(spec):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in ("get", "put", "post", "delete", "patch"):
                yield path, method, op


def test_committed_spec_matches_the_code(spec):
    committed = json.loads(COMMITTED.read_text())
    assert committed == spec, "openapi/openapi.json is stale: run `make openapi` and commit it"


def test_every_operation_is_documented(spec):
    ids = set()
    for path, method, op in operations(spec):
        assert op.get("summary") and op.get("tags") and op.get("operationId"), (path, method)
        ids.add(op["operationId"])
        if path.startswith("/api/v1/"):
            assert op["security"] == [{"bearerAuth": []}]
            for status in ("401", "403", "503"):
                assert status in op["responses"], (path, method, status)
            assert "application/problem+json" in op["responses"]["401"]["content"]
    assert len(ids) == len(list(operations(spec)))


def test_the_bearer_scheme_is_declared(spec):
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A token from DOCKVOL_TOKENS or DOCKVOL_TOKENS_FILE",
    }


def test_the_document_is_valid_openapi(spec):
    from openapi_spec_validator import validate

    validate(spec)


def test_every_create_links_to_its_get_and_delete(spec):
    for _path, _method, op in operations(spec):
        if op["operationId"].startswith("create"):
            links = {link["operationId"] for link in op["responses"]["201"]["links"].values()}
            noun = op["operationId"].removeprefix("create")
            assert {f"get{noun}", f"delete{noun}"} <= links, op["operationId"]


def test_every_time_a_resource_shows_is_declared_an_rfc3339_date_time(spec):
    shown = {
        name: schema["properties"]["created_at"]
        for name, schema in spec["components"]["schemas"].items()
        if "created_at" in schema.get("properties", {})
    }
    assert {"Volume", "Binding", "SharingGroup"} <= set(shown), sorted(shown)
    for name, field in shown.items():
        assert field["format"] == "date-time" and field["example"].endswith("Z"), (name, field)
