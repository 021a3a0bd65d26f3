"""The app's services (app.py builds them), as the routes reach them in a request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from ..app import Services


def services() -> Services:
    """`current_app.extensions["dockvol"]`, typed."""
    found: Services = current_app.extensions["dockvol"]
    return found
