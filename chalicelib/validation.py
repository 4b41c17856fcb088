"""Request-shape helpers and the one way Backdrop collects validation problems.

Every validator adds each problem (the field it is about and a message) to a `Problems` list and
raises once at the end, so the user fixes everything in one round trip; the error message shows
the first few problems and counts the rest, `details` carries them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from chalicelib.errors import BadRequest, ValidationError

PROBLEMS_IN_MESSAGE: Final = 5


def summarise(intro: str, problems: Iterable[Mapping[str, Any]]) -> str:
    """`intro: a: x; b: y; ... (and N more)`: the first five problems, then how many are left."""
    items = list(problems)
    head = "; ".join(f"{p['field']}: {p['message']}" for p in items[:PROBLEMS_IN_MESSAGE])
    more = f" (and {len(items) - PROBLEMS_IN_MESSAGE} more)" if len(items) > PROBLEMS_IN_MESSAGE else ""
    return f"{intro}: {head}{more}"


class Problems:
    """Every problem found in one request: `{"field", "message", **extra}` each."""

    def __init__(self, intro: str) -> None:
        self.intro = intro  # what the error message says before listing the problems
        self.items: list[dict[str, Any]] = []

    def add(self, field: str, message: str, **extra: Any) -> None:
        self.items.append({"field": field, "message": message, **extra})

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise ValidationError(summarise(self.intro, self.items), details=list(self.items))


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def require_list(body: Any, field: str, min_items: int, max_items: int) -> list[Any]:
    value = require_object(body).get(field)
    if not isinstance(value, list):
        raise ValidationError(f"{field} must be a list", details=[{"field": field, "message": "must be a list"}])
    if not min_items <= len(value) <= max_items:
        message = f"{field} must have {min_items} to {max_items:,} items, not {len(value):,}"
        raise ValidationError(message, details=[{"field": field, "message": message}])
    return value
