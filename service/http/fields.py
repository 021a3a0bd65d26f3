"""Field types shared by every resource's schemas."""

from __future__ import annotations

import marshmallow as ma
from werkzeug.routing import BaseConverter

from ..domain.labels import PREFIX

# Docker's rule for volume and container names, capped at a file name's length.
NAME_PATTERN = r"[a-zA-Z0-9][a-zA-Z0-9_.-]{1,254}"
LABEL_KEY_PATTERN = r"[A-Za-z0-9]([A-Za-z0-9._/-]{0,253}[A-Za-z0-9])?"


class FullMatch(ma.validate.Regexp):
    """Regexp that must match the whole value (`$` alone lets a trailing newline through)."""

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ma.ValidationError(self._format_error(value))
        return value


class NameConverter(BaseConverter):
    """Path segments that name an engine object: anything else is simply not a route (404)."""

    regex = NAME_PATTERN


def name_param_schema(converter: NameConverter) -> dict:
    return {"type": "string", "pattern": f"^{NAME_PATTERN}$"}


def Name(**kwargs) -> ma.fields.String:
    return ma.fields.String(
        validate=FullMatch(
            f"^{NAME_PATTERN}$", error="must match [a-zA-Z0-9][a-zA-Z0-9_.-]+ and be at most 255 characters"
        ),
        **kwargs,
    )


def _not_reserved(key: str) -> None:
    if key.startswith(PREFIX):
        raise ma.ValidationError(f"labels starting with '{PREFIX}' are reserved for dockvol")


LABEL_KEY = ma.fields.String(
    validate=[FullMatch(f"^{LABEL_KEY_PATTERN}$", error="not a valid label key"), _not_reserved]
)
LABEL_VALUE = ma.fields.String(validate=ma.validate.Length(max=4096))


def Labels(**kwargs) -> ma.fields.Dict:
    return ma.fields.Dict(keys=LABEL_KEY, values=LABEL_VALUE, validate=ma.validate.Length(max=64), **kwargs)


def LabelFilters(**kwargs) -> ma.fields.List:
    """Label filters as the engine takes them: `key` (has the label) or `key=value`."""
    item = ma.fields.String(
        validate=FullMatch(
            f"^{LABEL_KEY_PATTERN}(=[^\\x00]{{0,4096}})?$", error="a label filter is 'key' or 'key=value'"
        )
    )
    return ma.fields.List(item, validate=ma.validate.Length(max=32), **kwargs)
