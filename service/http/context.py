"""The app's services (wiring.py builds them), as the routes reach them in a request."""

from __future__ import annotations

from flask import current_app

from ..wiring import Services


def services() -> Services:
    """`current_app.extensions["dockvol"]`, typed."""
    found: Services = current_app.extensions["dockvol"]
    return found
