"""Small request-shape helpers shared by the API modules."""

from __future__ import annotations

from typing import Any

from chalicelib.errors import BadRequest, ValidationError


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
