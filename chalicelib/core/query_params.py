"""Query-string parameters: a whole number or one of a few words, else a 400 naming the parameter.

API Gateway hands a query string's values to the Lambda as text, decoded from UTF-8 and
percent-escapes; they are whatever the client sent. Python's own parsers are too loose and too
strict at once for them (issue #26): `"²".isdigit()` is True but `int("²")` raises, `int()` takes
`"１"` (a full-width digit), `" 1"` and `"1_0"`, and refuses more than 4,300 digits with a
ValueError. So a number here is 1 to MAX_DIGITS ASCII digits, nothing else, and every refusal is a
BadRequest with `details: [{"field": <name>, "message": ...}]`
(docs/aws-notes.md#n101-query-string-values-reach-the-lambda-as-text).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Final

from chalicelib.core.errors import BadRequest

# Longer than any limit a route takes; short enough that int() never sees a long string.
MAX_DIGITS: Final = 6
_WHOLE_NUMBER: Final = re.compile(rf"[0-9]{{1,{MAX_DIGITS}}}")


def refusal(name: str, message: str) -> BadRequest:
    """The 400 for one query parameter: the message says what it must be, details name it."""
    return BadRequest(f"{name} {message}", details=[{"field": name, "message": message}])


def whole_number(params: Mapping[str, str] | None, name: str, *, low: int, high: int, default: int) -> int:
    """`name`'s value, a whole number from `low` to `high` written in ASCII digits; `default` if absent."""
    raw = (params or {}).get(name)
    if raw is None:
        return default
    must = f"must be a whole number from {low} to {high}"
    if not isinstance(raw, str) or not _WHOLE_NUMBER.fullmatch(raw):
        raise refusal(name, must)
    value = int(raw)
    if not low <= value <= high:
        raise refusal(name, must)
    return value


def one_of(params: Mapping[str, str] | None, name: str, choices: Collection[str], default: str | None) -> str | None:
    """`name`'s value, exactly one of `choices` (case and all); `default` if absent."""
    raw = (params or {}).get(name)
    if raw is None:
        return default
    if not isinstance(raw, str) or raw not in choices:
        shown = raw[:40] if isinstance(raw, str) else raw
        raise refusal(name, f"must be one of {', '.join(choices)}, not {shown!r}")
    return raw
