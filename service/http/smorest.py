"""Project-wide flask-smorest behaviour: import Api, Blueprint and Schema from here.

- Schema refuses unknown fields everywhere, query strings included.
- Errors are problem documents, and documented as such.
- `Blueprint.operation(...)` is each operation's one declaration: its id, scope, answer and the
  errors it can give; it checks the bearer token before anything else runs (`protected`: so a 403
  never reaches the engine) and documents 401/403 and the engine's 502/503 for every operation.
  Summaries and descriptions are the views' docstrings. It also says how the request hooks and
  fleet mode's router serve the operation (`Serving`), which `serving()` reads back in a request.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import wraps
from http import HTTPStatus
from typing import Any, Literal, NoReturn, TypeVar, cast

import flask_smorest
import marshmallow as ma
from flask import Flask, Request, Response, current_app, g, request
from flask_smorest.utils import prepare_response
from webargs import missing
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import HTTPException

from ..domain.projects import acting_for
from ..domain.versions import IfMatch
from ..json_types import JSON
from . import limits, problems
from .context import services

# A view function or MethodView class: flask-smorest's decorators give back what they are given.
F = TypeVar("F", bound=Callable[..., Any])
# How fleet mode serves an operation (http/fleet/router.py): a per-node resource's list (merged
# over the nodes), create (placed on one), item (found by name), prune (on every node) or clone
# (onto another node); the fleet's nodes; the watch. None: this instance answers it itself.
FleetRole = Literal["list", "create", "item", "prune", "clone", "nodes", "watch"]


@dataclass(frozen=True)
class Serving:
    """What the request hooks and fleet mode's router need of an operation, declared with it."""

    fleet: FleetRole | None = None
    acting: bool = False  # a GET that acts (helpers, paused writers): reads the engine, and fleet mode waits for it
    raw_body: bool = False  # its body is a stream (a tar), not JSON


def serving() -> Serving:
    """What the request's operation declared (none for a route with no operation, or no route)."""
    view = current_app.view_functions.get(request.endpoint or "")
    cls = getattr(view, "view_class", None)
    if cls is not None:  # a MethodView: HEAD is served by its GET
        view = getattr(cls, "get" if request.method == "HEAD" else request.method.lower(), None)
    found: Serving = getattr(view, "serving", Serving())
    return found


class Schema(ma.Schema):
    class Meta:
        unknown = ma.RAISE
        ordered = True


class Parser(FlaskParser):
    # Let each schema's own `unknown = RAISE` apply to query strings too: a typo is an error.
    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": None, "querystring": None}

    def _raw_load_json(self, req: Request) -> Any:
        """JSON bodies within dockvol's limits (limits.load_json); past them, a bad request."""
        if not is_json_request(req):
            return missing
        try:
            return limits.load_json(req.get_data(cache=True))
        except limits.BadJson as exc:
            return self._handle_invalid_json_error(exc, req)

    def _handle_invalid_json_error(self, error: ValueError, req: Request, *args: Any, **kwargs: Any) -> NoReturn:
        reason = error.msg if isinstance(error, json.JSONDecodeError) else str(error)
        flask_smorest.abort(400, exc=error, messages={"json": [f"Invalid JSON body: {reason}"]})
        raise AssertionError("flask_smorest.abort raises")  # it is untyped: mypy cannot know it never returns


class Api(flask_smorest.Api):  # type: ignore[misc]  # flask-smorest is untyped: its Api is Any
    """As flask-smorest's, but a blueprint's views enter the spec when the spec is first read (the
    spec's route, `make openapi`), not at every worker's start: building them is about a third
    of a worker's start (0.25 s of 0.85), and few requests ever read the spec."""

    ERROR_SCHEMA = problems.ProblemSchema
    DEFAULT_ERROR_CONTENT_TYPE = problems.CONTENT_TYPE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._undocumented: list[tuple[Any, str, Any]] = []  # (blueprint, name, parameters)
        self._documenting = threading.Lock()
        self._here = threading.local()  # `documenting`: this thread is adding them (and reads the spec)
        super().__init__(*args, **kwargs)

    @property
    def spec(self) -> Any:
        spec = self.__dict__.get("_spec")
        if spec is None or not self._undocumented or getattr(self._here, "documenting", False):
            return spec
        with self._documenting:  # another thread waits here for the whole spec, never a part
            self._here.documenting = True
            try:
                for blp, name, parameters in self._undocumented:  # in the order they were registered
                    blp.register_views_in_doc(self, self._app, spec, name=name, parameters=parameters)
                    spec.tag({"name": name, "description": blp.description})
                self._undocumented = []
            finally:
                self._here.documenting = False
        return spec

    @spec.setter
    def spec(self, value: Any) -> None:
        self.__dict__["_spec"] = value

    def register_blueprint(self, blp: Any, *, parameters: Any = None, **options: Any) -> None:
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)
        self._undocumented.append((blp, name, parameters))

    def init_app(self, app: Flask, **kwargs: Any) -> None:
        super().init_app(app, **kwargs)
        self.spec.components.security_scheme(
            "bearerAuth",
            {"type": "http", "scheme": "bearer", "description": "A token from DOCKVOL_TOKENS or DOCKVOL_TOKENS_FILE"},
        )

    def handle_http_exception(self, error: HTTPException) -> Response:
        return problems.from_http_exception(error)

    def _register_responses(self) -> None:
        # As flask-smorest does, but error bodies are problem documents.
        statuses: list[HTTPStatus | str] = [*HTTPStatus, "DEFAULT_ERROR"]
        for status in statuses:
            name = status if isinstance(status, str) else status.name
            response: dict[str, Any] = {"description": "Error" if isinstance(status, str) else status.phrase}
            if isinstance(status, str) or status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, self.DEFAULT_ERROR_CONTENT_TYPE)
            self.spec.components.response(name, response, lazy=True)


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]  # flask-smorest is untyped: its Blueprint is Any
    ARGUMENTS_PARSER = Parser()

    def __init__(self, *args: Any, per_node: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prepare_doc_cbks.append(self._prepare_if_match_doc)
        self._per_node = per_node  # its resources live on nodes: routes document `node`

    def route(self, rule: str, *, parameters: list[JSON | str] | None = None, **options: Any) -> Callable[[F], F]:
        """As flask-smorest's, and a resource's routes document the `node` query parameter (which
        http/hooks.py takes off the query before any view reads it) and are served by fleet mode
        as the resource's list and create, or as its items, unless an operation says otherwise."""
        if self._per_node:
            parameters = [*(parameters or []), NODE_ITEM_PARAM if "<" in rule else NODE_FILTER_PARAM]
        registered: Callable[[F], F] = super().route(rule, parameters=parameters, **options)
        if not self._per_node:
            return registered

        def decorator(view: F) -> F:
            item = "<" in rule
            for method in ("get", "post", "put", "patch", "delete"):
                func = getattr(view, method, None)
                declared = getattr(func, "serving", None)
                if declared is not None and declared.fleet is None:
                    role = "item" if item else {"get": "list", "post": "create"}.get(method)
                    func.serving = replace(declared, fleet=role)  # type: ignore[union-attr]
            return registered(view)

        return decorator

    # flask-smorest's own decorators, typed: each documents (or parses) and gives back what it is given.

    def arguments(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        decorator: Callable[[F], F] = super().arguments(*args, **kwargs)
        return decorator

    def response(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        decorator: Callable[[F], F] = super().response(*args, **kwargs)
        return decorator

    def alt_response(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        decorator: Callable[[F], F] = super().alt_response(*args, **kwargs)
        return decorator

    def doc(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        decorator: Callable[[F], F] = super().doc(*args, **kwargs)
        return decorator

    def refusal(self, description: str) -> Callable[[F], F]:
        """Document the 422 a body may get with what it covers beyond the schema: the rules no
        schema can state, and what the engine lacks."""
        return self.alt_response(
            422, schema=problems.ProblemSchema, content_type=problems.CONTENT_TYPE, description=description
        )

    @staticmethod
    def if_match(func: F) -> F:
        """Document the optional If-Match header (412 on mismatch); the view checks it."""
        docs = {**getattr(func, "_apidoc", {}), "if_match": True}
        func._apidoc = docs  # type: ignore[attr-defined]  # flask-smorest keeps a view's docs on the function
        return func

    @staticmethod
    def _prepare_if_match_doc(doc: JSON, doc_info: JSON, **kwargs: Any) -> JSON:
        # Appended, not merged through blp.doc(): a manual `parameters` list would replace the
        # query parameters that blp.arguments documents.
        if doc_info.get("if_match"):
            doc.setdefault("parameters", []).append(IF_MATCH_DOC)
            doc.setdefault("responses", {})[412] = IF_MATCH_FAILED
        return doc

    def operation(
        self,
        operation_id: str,
        scope: str | None,
        status: int = 200,
        schema: Any = None,
        *,
        errors: Mapping[int, str | None] | None = None,
        if_match: bool = False,
        links: Sequence[str] = (),
        responses: dict[int, JSON] | None = None,
        request_body: JSON | None = None,
        serving: Serving | None = None,
        **response: Any,
    ) -> Callable[[F], F]:
        """The one declaration of an operation: its id, the scope it needs (None: open to anyone), what it answers
        (`status`, `schema`, and flask-smorest's `response` options: headers, description,
        content_type), and the errors it can answer beyond those every operation can (a token's
        401/403, the engine's 502/503: `protected`), each with what it means here (None: the
        status's own words; a 422 says what the body may break beyond its schema). `if_match`:
        it honours If-Match (412). `links`: operations that take the name it answers with;
        `responses`: more of the documented responses, as they are; `request_body`: a body no
        schema describes (an archive); `serving`: how the hooks and fleet mode serve it. The
        summary and description are the view's docstring."""

        def decorator(func: F) -> F:
            doc: JSON = {"operationId": operation_id}
            more: dict[int, JSON] = {code: dict(given) for code, given in (responses or {}).items()}
            if links:
                more.setdefault(status, {})["links"] = links_to(*links)
            if more:
                doc["responses"] = more
            if request_body:
                doc["requestBody"] = request_body
            view: F = self.doc(**doc)(self.if_match(func) if if_match else func)
            for code, meaning in (errors or {}).items():
                if code == 422:
                    view = self.refusal(meaning or "The body breaks a rule beyond its schema")(view)
                else:
                    described = {"description": meaning} if meaning else {}
                    view = self.alt_response(code, response=HTTPStatus(code).name, **described)(view)
            view = self.response(status, schema, **response)(view)
            view = view if scope is None else self.protected(scope)(view)
            view.serving = serving or Serving()  # type: ignore[attr-defined]  # read back by serving()
            return view

        return decorator

    def protected(self, scope: str) -> Callable[[F], F]:
        def decorator(func: F) -> F:
            @wraps(func)
            def checked(*args: Any, **kwargs: Any) -> Any:
                forwarded = g.get("forwarded")  # fleet mode: the caller an instance vouched for
                if forwarded is not None:
                    g.principal = forwarded.require(scope)
                else:
                    auth = services().auth
                    g.principal = auth.authorize(request.headers.get("Authorization"), scope)
                with acting_for(g.principal.project):  # what the use cases see and make: its project's
                    return func(*args, **kwargs)

            documented: F = self.doc(security=[{"bearerAuth": []}])(cast(F, checked))  # wraps keeps func's signature
            for status, text, headers in (
                (401, "Missing or unknown bearer token", {"WWW-Authenticate": {"schema": {"type": "string"}}}),
                (403, f"The token lacks the '{scope}' scope, or policy refuses the request", None),
                (502, "The engine failed the request", None),
                (503, "The engine is unreachable or timed out", {"Retry-After": {"schema": {"type": "integer"}}}),
            ):
                documented = self.alt_response(
                    status,
                    schema=problems.ProblemSchema,
                    description=text,
                    content_type=problems.CONTENT_TYPE,
                    headers=headers,
                )(documented)
            return documented

        return decorator


ETAG_DOC = {
    "ETag": {"schema": {"type": "string"}, "description": "Send it back in If-Match to change only what you read"}
}
LOCATION_DOC = {"Location": {"schema": {"type": "string"}, "description": "Where the new resource is"}}


def links_to(*operations: str, field: str = "name", param: str = "name") -> JSON:
    """OpenAPI links from a response to the operations that take what it names."""
    return {
        op[0].upper() + op[1:]: {"operationId": op, "parameters": {param: f"$response.body#/{field}"}}
        for op in operations
    }


NODE_ITEM_PARAM = {
    "in": "query",
    "name": "node",
    "schema": {"type": "string"},
    "required": False,
    "description": "The node that holds it (fleet mode: needed when the name is on several nodes)",
}
NODE_FILTER_PARAM = {
    "in": "query",
    "name": "node",
    "schema": {"type": "array", "items": {"type": "string"}},
    "explode": True,
    "required": False,
    "description": "Only these nodes (repeatable)",
}

IF_MATCH_DOC = {
    "in": "header",
    "name": "If-Match",
    "schema": {"type": "string"},
    "required": False,
    "description": "Act only if the resource still has one of these ETags (`*`: any). Compared strongly, as "
    "HTTP says: a weak tag (W/...) never matches, nor does an empty or unreadable value. A 412 otherwise",
}
IF_MATCH_FAILED = {
    "description": "If-Match names none of the resource's current ETag: a stale one, a weak one, or none at all",
    "content": {problems.CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def if_match() -> IfMatch | None:
    """The request's If-Match, for a use case to hold its resource's version against (None: none
    sent, anything goes). Compared strongly, as HTTP says: a weak tag never matches, and an empty
    or unreadable value names no version; `*` matches any."""
    if "If-Match" not in request.headers:
        return None
    tags = request.if_match
    return IfMatch(frozenset(tags.as_set()), any=tags.star_tag)
