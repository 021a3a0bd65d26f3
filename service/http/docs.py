"""The interactive API page at /api/docs works with no internet access: Swagger UI's assets (5.x,
which renders OpenAPI 3.1) come from the flask-swagger-ui package and are served here, not from a
CDN. Only its files are used, not its blueprint."""

from __future__ import annotations

import pathlib

import flask_swagger_ui
from flask import Blueprint, Flask, Response, send_from_directory

ASSETS_URL = "/api/docs/assets/"
ASSETS = pathlib.Path(flask_swagger_ui.__file__).resolve().parent / "dist"
blp = Blueprint("docs_assets", __name__)


@blp.route(ASSETS_URL + "<path:filename>")
def asset(filename: str) -> Response:
    return send_from_directory(ASSETS, filename, max_age=86400)


def init_app(app: Flask) -> None:
    app.register_blueprint(blp)
