"""The hooks every request passes through, registered in one place in the order they run."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable

from flask import Flask, Response, current_app, g, request
from werkzeug.datastructures import ImmutableMultiDict

from ..engine.viewed import ViewedEngine
from ..errors import NotFound, TooLarge
from . import observability, problems
from .context import services
from .smorest import serving

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
BODY_METHODS = ("POST", "PUT", "PATCH")
FrontDoor = Callable[[], Response | None]


def register(app: Flask, engine: ViewedEngine, front_door: FrontDoor) -> None:
    """Before the view, in this order; the first hook that answers ends the chain, so the request
    id and the clock come first: every answer, a router's or a refusal's too, is timed and named."""
    app.before_request(_take_request_id)
    app.before_request(observability.start_clock)
    # GET requests read the view of the engine (service/engine/viewed.py); others the engine, and
    # so do the GETs of volume data, which act on what they read (pause its writers, make helpers).
    app.before_request(lambda: engine.new_scope(reading=request.method in ("GET", "HEAD") and not serving().acting))
    app.before_request(_require_json_body)
    app.before_request(_take_node)
    app.before_request(front_door)  # fleet mode's router, or this one node's
    # After the view: Flask runs these in the reverse order of registration, so the clock stops last.
    app.after_request(_account)
    app.after_request(_give_request_id)
    app.after_request(_settled(engine))  # a write is published to every worker's view before its answer
    app.teardown_request(lambda _exc: engine.end_scope())


def _take_request_id() -> None:
    given = request.headers.get("X-Request-ID", "")
    g.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _give_request_id(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id") or uuid.uuid4().hex
    return response


def _settled(engine: ViewedEngine) -> Callable[[Response], Response]:
    def settle(response: Response) -> Response:
        engine.settle()
        return response

    return settle


def _account(response: Response) -> Response:
    """Logged and counted with the caller the view authorized, else (answered before any view
    checked it: a router's answer, a refusal) the holder of the token the request carries."""
    caller = g.get("principal") or g.get("forwarded")
    if caller is None:
        caller = services().auth.identify(request.headers.get("Authorization"))
    return observability.account(response, caller.name if caller else None)


def _require_json_body() -> Response | None:
    if serving().raw_body:
        request.max_content_length = services().settings.max_import_bytes
        return None
    if request.method in BODY_METHODS and (request.content_length or request.headers.get("Transfer-Encoding")):
        if not request.is_json:
            return problems.problem(415, "unsupported-media-type", "Send the body as application/json.")
        _buffer_chunked(current_app.config["MAX_CONTENT_LENGTH"])
    return None


def _buffer_chunked(max_bytes: int) -> None:
    """A chunked body has no Content-Length to hold against the cap, and Werkzeug would cut it at
    the cap and hand the parser the first part: read it here, up to one byte past the cap."""
    if request.content_length is not None:
        return
    data = request.environ["wsgi.input"].read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TooLarge(f"the body is over the limit of {max_bytes} bytes")
    request.environ["wsgi.input"] = io.BytesIO(data)
    request.environ["CONTENT_LENGTH"] = str(len(data))
    request.environ.pop("HTTP_TRANSFER_ENCODING", None)


def _take_node() -> None:
    """`?node=` picks the node a request is for (docs/design.md section 10): taken off the query
    here, so that no view's own query checks see it."""
    g.nodes = request.args.getlist("node")
    if g.nodes:
        request.args = ImmutableMultiDict([(k, v) for k, v in request.args.items(multi=True) if k != "node"])


def only_this_node() -> None:
    """One engine's front door: a request for another node finds nothing: a list is empty (after
    its view checked the query), anything else (the watch too) 404; a caller without a token
    hears 401 first."""
    role = serving().fleet
    if not g.nodes or role in (None, "nodes"):
        return
    services().auth.authorize(request.headers.get("Authorization"), "read")
    here = services().nodes.here()
    if here in g.nodes:
        return
    if role == "list" and request.method == "GET":
        g.other_nodes = True  # pagination.paginate lists nothing
        return
    raise NotFound(f"there is no node {g.nodes[0]!r} (this is {here})")
