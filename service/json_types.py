"""One name for a JSON object: what the engine answers, a resource's document, an event's data.

Its values are Any on purpose: they are checked where they are read (a schema, a record's
constructor), not here."""

from typing import Any

JSON = dict[str, Any]
