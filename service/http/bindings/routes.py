"""/api/v1/bindings: read the request, call one use case, shape the answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Response, url_for
from flask.views import MethodView

from ...domain.bindings import Binding, BindingQuery, Bindings, BindingSpec
from ...errors import InvalidInput
from ..context import services
from ..documents import answer, binding_document, check_node, here
from ..pagination import HEADERS_DOC, paginate
from ..responses import json_response
from ..smorest import ETAG_DOC, LOCATION_DOC, Blueprint, if_match
from .schemas import (
    EXAMPLE,
    BindingCreateSchema,
    BindingDeleteArgs,
    BindingQuerySchema,
    BindingReplaceSchema,
    BindingSchema,
)

blp = Blueprint(
    "bindings", __name__, url_prefix="/api/v1/bindings", description="Containers bound to storage", per_node=True
)


def _bindings() -> Bindings:
    return services().bindings


def _shown(binding: Binding, status: int = 200) -> Response:
    location = url_for("bindings.BindingItem", name=binding.name) if status == 201 else None
    return answer(binding, status, location)


def _spec(data: dict[str, Any], name: str) -> BindingSpec:
    command = tuple(data["command"]) if data["command"] is not None else None
    return BindingSpec(**{**data, "name": name, "command": command, "mounts": tuple(data["mounts"])})


@blp.route("")
class BindingCollection(MethodView):
    @blp.operation("listBindings", "read", 200, BindingSchema(many=True), headers=HEADERS_DOC)
    @blp.arguments(BindingQuerySchema, location="query", as_kwargs=True)
    def get(self, page: int, page_size: int, label: Sequence[str] = (), **filters: Any) -> Response:
        """List bindings"""
        bindings, headers = paginate(_bindings().list(BindingQuery(labels=label, **filters)), page, page_size)
        node = here()
        return json_response([binding_document(b, node) for b in bindings], headers=headers)

    @blp.operation(
        "createBinding",
        "write",
        201,
        BindingSchema,
        headers={**LOCATION_DOC, **ETAG_DOC},
        errors={
            409: "A container of that name exists",
            422: "The body breaks the schema or a rule it cannot state (a repeated mount target), or names what "
            "the engine lacks: an image, a volume, a sharing group, a network, a node other than this one",
        },
        links=("getBinding", "deleteBinding", "stopBinding", "startBinding"),
    )
    @blp.arguments(BindingCreateSchema, example=EXAMPLE)
    def post(self, data: dict[str, Any]) -> Response:
        """Create a binding: a container with its mounts, started unless start is false"""
        check_node(data.pop("node", None))
        with services().projects.creating_in(data.pop("project", None)):
            return _shown(_bindings().create(_spec(data, data["name"])), 201)


@blp.route("/<name:name>")
class BindingItem(MethodView):
    @blp.operation("getBinding", "read", 200, BindingSchema, headers=ETAG_DOC, errors={404: None})
    def get(self, name: str) -> Response:
        """Get one binding"""
        return _shown(_bindings().get(name))

    @blp.operation(
        "replaceBinding",
        "write",
        200,
        BindingSchema,
        headers=ETAG_DOC,
        errors={
            404: None,
            422: "The body breaks the schema or a rule it cannot state (a `name` other than the path's, a "
            "repeated mount target), or names what the engine lacks: an image, a volume, a sharing group, a network",
        },
        if_match=True,
    )
    @blp.arguments(BindingReplaceSchema, example=EXAMPLE)
    def put(self, data: dict[str, Any], name: str) -> Response:
        """Replace a binding's spec: recreate its container, keeping its data

        The path names the binding; the body's `name` is read-only (sent anyway, it must be the path's).
        """
        if data.get("name", name) != name:
            raise InvalidInput("name", "the body's name must be the binding's name")
        return _shown(_bindings().replace(name, _spec(data, name), if_match()))

    @blp.operation("deleteBinding", "write", 204, errors={404: None}, if_match=True)
    @blp.arguments(BindingDeleteArgs, location="query", as_kwargs=True)
    def delete(self, name: str, remove_anonymous_volumes: bool) -> None:
        """Delete a binding's container; its volumes stay"""
        _bindings().delete(name, remove_anonymous_volumes, if_match())


@blp.route("/<name:name>/start")
class BindingStart(MethodView):
    @blp.operation("startBinding", "write", 200, BindingSchema, headers=ETAG_DOC, errors={404: None})
    def post(self, name: str) -> Response:
        """Start a binding's container"""
        return _shown(_bindings().start(name))


@blp.route("/<name:name>/stop")
class BindingStop(MethodView):
    @blp.operation("stopBinding", "write", 200, BindingSchema, headers=ETAG_DOC, errors={404: None})
    def post(self, name: str) -> Response:
        """Stop a binding's container"""
        return _shown(_bindings().stop(name))
