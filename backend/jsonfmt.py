"""JSON as a person would lay it out: small objects and lists on one line, the rest indented.

Used for the files the tooling writes and a test compares with what is committed
(.chalice/config.json, statemachine/*.asl.json), so their layout is one canonical form.
"""

from __future__ import annotations

import json
from typing import Any


def dumps(value: Any, *, indent: int = 2, width: int = 120) -> str:
    return _dump(value, 0, indent, width, 0) + "\n"


def _dump(value: Any, level: int, indent: int, width: int, used: int) -> str:
    """`used`: characters already on this line before the value (indent and key)."""
    flat = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, dict | list) or not value or used + len(flat) + 1 <= width:
        return flat
    inner = " " * (indent * (level + 1))
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            head = f"{inner}{json.dumps(key, ensure_ascii=False)}: "
            items.append(head + _dump(item, level + 1, indent, width, len(head)))
        open_, close = "{", "}"
    else:
        items = [inner + _dump(item, level + 1, indent, width, len(inner)) for item in value]
        open_, close = "[", "]"
    return open_ + "\n" + ",\n".join(items) + "\n" + " " * (indent * level) + close
