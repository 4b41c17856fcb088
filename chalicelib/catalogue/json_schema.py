"""OpenAPI components generated from pydantic models: the request models of
chalicelib/catalogue/schemas.py and the answer models of chalicelib/api/responses.py go through one
generation, so an enum or a model both use is one component. Used when the document is built
(GET /openapi.json, `python -m backend.openapi`), never by a route.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel


def components(models: Iterable[type[BaseModel]]) -> dict[str, Any]:
    """The JSON Schemas of `models` and of every model and enum they use, as OpenAPI components
    (one generation: a type used by two of them is one component)."""
    from pydantic.json_schema import models_json_schema  # the document only, not the routes

    _, top = models_json_schema([(m, "validation") for m in models], ref_template="#/components/schemas/{model}")
    return {name: _tidy(schema) for name, schema in top.get("$defs", {}).items()}


def _tidy(schema: Any) -> Any:
    """pydantic's schema without its generated titles and null defaults, and an optional field as
    its own type: `null` is accepted and means "not given"."""
    if isinstance(schema, list):
        return [_tidy(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    # no title (the component's name says it), and no `default: null` (a field that may be absent)
    out = {
        k: _tidy(v)
        for k, v in schema.items()
        if not (k == "title" and isinstance(v, str)) and not (k == "default" and v is None)
    }
    if "properties" in out:
        out["properties"] = {k: _tidy(v) for k, v in schema["properties"].items()}
    branches = out.get("anyOf")
    if isinstance(branches, list) and len(branches) == 2 and {"type": "null"} in branches:
        # `null` is accepted and means "not given" (as the parsers always took it): said as the
        # field's type or null, so its own type, enum and bounds stay on the property itself
        (kind,) = [b for b in branches if b != {"type": "null"}]
        rest = {k: v for k, v in out.items() if k != "anyOf" and not (k == "default" and v is None)}
        if isinstance(kind.get("type"), str):
            out = {**kind, **rest, "type": [kind["type"], "null"]}
            if "enum" in kind:
                out["enum"] = [*kind["enum"], None]
        else:
            out = {**rest, "anyOf": branches}
    return out
