"""DynamoDB helpers shared by the jobs API, the starter and the report."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any


def plain(value: Any) -> Any:
    """DynamoDB Decimals back to int/float, recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def query_all(table: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item of a query, page by page (a 10,000-image job spans many 1 MB pages)."""
    while True:
        page = table.query(**kwargs)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
