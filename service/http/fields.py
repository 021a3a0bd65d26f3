"""Field types shared by every resource's schemas."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, overload

import marshmallow as ma
from apispec.ext.marshmallow.field_converter import FieldConverterMixin
from werkzeug.routing import BaseConverter

from ..config import PROJECT_NAME
from ..domain.labels import PREFIX
from ..json_types import JSON

RESERVED_VOLUME_NAMES = ("prune",)
# Docker's rule for volume and container names, capped at a file name's length.
NAME_PATTERN = r"[a-zA-Z0-9][a-zA-Z0-9_.-]{1,254}"
LABEL_KEY_PATTERN = r"[A-Za-z0-9]([A-Za-z0-9._/-]{0,253}[A-Za-z0-9])?"


class FullMatch(ma.validate.Regexp):
    """Regexp that must match the whole value (`$` alone lets a trailing newline through)."""

    def __init__(self, regex: str, *, error: str | None = None) -> None:
        super().__init__(regex, error=error)  # a Regexp still: the spec documents its pattern
        self._whole = re.compile(regex)

    @overload
    def __call__(self, value: str) -> str: ...

    @overload
    def __call__(self, value: bytes) -> bytes: ...

    def __call__(self, value: str | bytes) -> str | bytes:
        if not isinstance(value, str) or self._whole.fullmatch(value) is None:
            raise ma.ValidationError(self._format_error(value))
        return value


class StrictBool(ma.fields.Boolean):
    """A JSON boolean only: marshmallow's Boolean would also take 1, "yes" or "on"."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class StrictInt(ma.fields.Integer):
    """A JSON integer only: no strings, booleans or fractions. A number with a zero fraction (4096.0)
    is an integer, as JSON Schema 2020-12 (OpenAPI 3.1's) counts them, so it is taken."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return super()._validated(value)


class NameConverter(BaseConverter):
    """Path segments that name an engine object: anything else is simply not a route (404)."""

    regex = NAME_PATTERN


class VolumeNameConverter(NameConverter):
    """As NameConverter, but not `prune`: /volumes/prune is the prune action, for every method
    (so OPTIONS and 405 answers list only what that path really takes)."""

    regex = "".join(f"(?!{n}(?:/|$))" for n in RESERVED_VOLUME_NAMES) + NAME_PATTERN


def volume_param_schema(converter: VolumeNameConverter) -> JSON:
    return {**name_param_schema(converter), "not": {"enum": list(RESERVED_VOLUME_NAMES)}}


def name_param_schema(converter: NameConverter) -> JSON:
    return {"type": "string", "pattern": f"^{NAME_PATTERN}$"}


def Name(**kwargs: Any) -> ma.fields.String:
    return ma.fields.String(
        validate=FullMatch(
            f"^{NAME_PATTERN}$", error="must match [a-zA-Z0-9][a-zA-Z0-9_.-]+ and be at most 255 characters"
        ),
        **kwargs,
    )


def ProjectName(**kwargs: Any) -> ma.fields.String:
    """A project's name (DOCKVOL_PROJECTS' keys)."""
    return ma.fields.String(validate=FullMatch(f"^{PROJECT_NAME.pattern}$", error="not a project name"), **kwargs)


def CreatedAt() -> ma.fields.String:
    """When the engine created a resource, as every time is shown (service/times.py)."""
    return ma.fields.String(
        allow_none=True,
        metadata={
            "format": "date-time",
            "description": "RFC 3339 in UTC (`Z`); null if the engine does not say",
            "example": "2026-12-05T12:00:00Z",
        },
    )


def _not_a_reserved_volume_name(name: str) -> None:
    """Documented as `not: {enum: [...]}` by VolumeName."""
    if name in RESERVED_VOLUME_NAMES:
        raise ma.ValidationError(f"{name} is reserved: /volumes/{name} is an action")


def VolumeName(**kwargs: Any) -> ma.fields.String:
    """A volume's name: Docker's rule, and not one of the names the API uses for actions."""
    return ma.fields.String(
        validate=[
            FullMatch(f"^{NAME_PATTERN}$", error="must match [a-zA-Z0-9][a-zA-Z0-9_.-]+ and be at most 255 characters"),
            _not_a_reserved_volume_name,
        ],
        **{**kwargs, "metadata": {**kwargs.get("metadata", {}), "not": {"enum": list(RESERVED_VOLUME_NAMES)}}},
    )


def _not_reserved(key: str) -> None:
    if key.startswith(PREFIX):
        raise ma.ValidationError(f"labels starting with '{PREFIX}' are reserved for dockvol")


LABEL_KEY = ma.fields.String(
    validate=[FullMatch(f"^{LABEL_KEY_PATTERN}$", error="not a valid label key"), _not_reserved],
    metadata={"not": {"pattern": "^" + re.escape(PREFIX)}},  # documents _not_reserved
)
LABEL_VALUE = ma.fields.String(validate=ma.validate.Length(max=4096))


class MaxProperties:
    """At most `n` keys in a dict (documented as maxProperties; marshmallow's Length would say maxLength)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > self.n:
            raise ma.ValidationError(f"at most {self.n} entries")
        return value


def Dict(max_properties: int, metadata: Mapping[str, Any] | None = None, **kwargs: Any) -> ma.fields.Dict:
    return ma.fields.Dict(
        validate=MaxProperties(max_properties), metadata={**(metadata or {}), "maxProperties": max_properties}, **kwargs
    )


def dict_keys_to_openapi(converter: FieldConverterMixin, field: ma.fields.Field[Any], **kwargs: Any) -> JSON:
    """apispec attribute function: a Dict's key field, when it checks more than being a string,
    documented as `propertyNames` (JSON Schema, so OpenAPI 3.1: 3.0 has no way to say it)."""
    if not isinstance(field, ma.fields.Dict) or field.key_field is None:
        return {}
    names = converter.field2property(field.key_field)
    return {} if names == {"type": "string"} else {"propertyNames": names}


def Labels(**kwargs: Any) -> ma.fields.Dict:
    return Dict(64, keys=LABEL_KEY, values=LABEL_VALUE, **kwargs)


def LabelFilters(in_query: bool = False, **kwargs: Any) -> ma.fields.List[str]:
    """Label filters as the engine takes them: `key` (has the label) or `key=value`.

    In a query string they are fewer and shorter, so that any URL the schema admits stays within
    the server's request-line limit (8190 bytes) even with every character percent-encoded."""
    items, value = (4, 64) if in_query else (32, 4096)
    item = ma.fields.String(
        validate=FullMatch(
            f"^{LABEL_KEY_PATTERN}(=[^\\x00]{{0,{value}}})?$", error="a label filter is 'key' or 'key=value'"
        )
    )
    return ma.fields.List(item, validate=ma.validate.Length(max=items), **kwargs)
