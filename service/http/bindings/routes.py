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
from ..smorest import ETAG_DOC, LOCATION_DOC, Blueprint, check_if_match, json_response, links_to
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
    return answer(binding_document(binding, here()), status, location)


def _if_match(binding: Binding) -> None:
    check_if_match(binding_document(binding, here()))


def _spec(data: dict[str, Any], name: str) -> BindingSpec:
    command = tuple(data["command"]) if data["command"] is not None else None
    return BindingSpec(**{**data, "name": name, "command": command, "mounts": tuple(data["mounts"])})


@blp.route("")
class BindingCollection(MethodView):
    @blp.protected("read")
    @blp.arguments(BindingQuerySchema, location="query", as_kwargs=True)
    @blp.response(200, BindingSchema(many=True), headers=HEADERS_DOC)
    @blp.doc(summary="List bindings", operationId="listBindings")
    def get(self, page: int, page_size: int, label: Sequence[str] = (), **filters: Any) -> Response:
        bindings, headers = paginate(_bindings().list(BindingQuery(labels=label, **filters)), page, page_size)
        node = here()
        return json_response([binding_document(b, node) for b in bindings], headers=headers)

    @blp.protected("write")
    @blp.arguments(BindingCreateSchema, example=EXAMPLE)
    @blp.response(201, BindingSchema, headers={**LOCATION_DOC, **ETAG_DOC})
    @blp.alt_response(409, response="CONFLICT", description="A container of that name exists")
    @blp.refusal(
        "The body breaks the schema or a rule it cannot state (a repeated mount target), or names what the "
        "engine lacks: an image, a volume, a sharing group, a network, a node other than this one"
    )
    @blp.doc(
        summary="Create a binding: a container with its mounts, started unless start is false",
        operationId="createBinding",
        responses={201: {"links": links_to("getBinding", "deleteBinding", "stopBinding", "startBinding")}},
    )
    def post(self, data: dict[str, Any]) -> Response:
        check_node(data.pop("node", None))
        return _shown(_bindings().create(_spec(data, data["name"])), 201)


@blp.route("/<name:name>")
class BindingItem(MethodView):
    @blp.protected("read")
    @blp.response(200, BindingSchema, headers=ETAG_DOC)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(summary="Get one binding", operationId="getBinding")
    def get(self, name: str) -> Response:
        return _shown(_bindings().get(name))

    @blp.protected("write")
    @blp.arguments(BindingReplaceSchema, example=EXAMPLE)
    @blp.response(200, BindingSchema, headers=ETAG_DOC)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.refusal(
        "The body breaks the schema or a rule it cannot state (a `name` other than the path's, a repeated "
        "mount target), or names what the engine lacks: an image, a volume, a sharing group, a network"
    )
    @blp.doc(
        summary="Replace a binding's spec: recreate its container, keeping its data",
        operationId="replaceBinding",
        description="The path names the binding; the body's `name` is read-only (sent anyway, it must be the path's).",
    )
    @blp.if_match
    def put(self, data: dict[str, Any], name: str) -> Response:
        if data.get("name", name) != name:
            raise InvalidInput("name", "the body's name must be the binding's name")
        return _shown(_bindings().replace(name, _spec(data, name), precondition=_if_match))

    @blp.protected("write")
    @blp.arguments(BindingDeleteArgs, location="query", as_kwargs=True)
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(summary="Delete a binding's container; its volumes stay", operationId="deleteBinding")
    @blp.if_match
    def delete(self, name: str, remove_anonymous_volumes: bool) -> None:
        _bindings().delete(name, remove_anonymous_volumes, precondition=_if_match)


@blp.route("/<name:name>/start")
class BindingStart(MethodView):
    @blp.protected("write")
    @blp.response(200, BindingSchema, headers=ETAG_DOC)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(summary="Start a binding's container", operationId="startBinding")
    def post(self, name: str) -> Response:
        return _shown(_bindings().start(name))


@blp.route("/<name:name>/stop")
class BindingStop(MethodView):
    @blp.protected("write")
    @blp.response(200, BindingSchema, headers=ETAG_DOC)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(summary="Stop a binding's container", operationId="stopBinding")
    def post(self, name: str) -> Response:
        return _shown(_bindings().stop(name))
