"""Request decoding, request-shape helpers and the one way Backdrop collects validation problems.

Every request body is decoded strictly, before any handler looks at it: a body that is too large,
not UTF-8, not JSON, nested too deep, or carrying text no store can hold (a lone UTF-16 surrogate
such as `\\ud800`, which `json.loads` accepts but nothing can encode later) is a 400 that names the
problem and where it is. Nothing is read from or written to AWS before that.

Every validator then adds each problem (the field it is about and a message) to a `Problems` list
and raises once at the end, so the user fixes everything in one round trip; the error message
shows the first few problems and counts the rest, `details` carries them all.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Final

from chalicelib.core import contracts
from chalicelib.core.errors import BadRequest, ValidationError

_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_INT_DIGITS = 30  # the largest number Backdrop reads is a seed below 2**32
# What a DynamoDB number can be (docs/aws-notes.md#n82-dynamodb-numbers): a magnitude from 1E-130 to
# 9.99...E+125 (38 nines), or 0. A float has at most 17 significant digits and an int here at most
# _MAX_INT_DIGITS, both within its 38, so the magnitude is what is left to check.
DYNAMODB_NUMBER_MAX: Final = Decimal("9.9999999999999999999999999999999999999E+125")
DYNAMODB_NUMBER_MIN: Final = Decimal("1E-130")


def _refuse(field: str, message: str) -> BadRequest:
    return BadRequest(message, details=[{"field": field, "message": message}])


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _refuse(key, f"the key {key!r} appears more than once in one JSON object")
        data[key] = value
    return data


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _refuse("body", f"the number {text[:40]} is too large to be a JSON number Backdrop can store")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise _refuse(
            "body", f"a number with {len(text.lstrip('-')):,} digits is larger than any value Backdrop accepts"
        )
    return int(text)


def _no_constant(name: str) -> Any:
    raise _refuse("body", f"{name} is not a JSON value (JSON has no NaN or Infinity)")


def _field(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def storable_number(value: float) -> bool:
    """Whether DynamoDB can store the number (a job's settings are stored as they are given)."""
    magnitude = abs(Decimal(repr(value)) if isinstance(value, float) else Decimal(value))
    return magnitude == 0 or DYNAMODB_NUMBER_MIN <= magnitude <= DYNAMODB_NUMBER_MAX


def _check_tree(data: Any) -> None:
    """Depth, text and number checks over the decoded body, iteratively (no recursion to exhaust)."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, float) and not storable_number(value):
            # refused here, before anything is written: stored later it would fail half-way
            field = path or "body"
            raise _refuse(
                field,
                f"{field} is {value!r}: Backdrop stores numbers from 1E-130 to 9.99E+125 in magnitude (or 0), "
                "and no setting needs more",
            )
        if isinstance(value, str):
            match = _SURROGATE.search(value)
            if match:
                field = path or "body"
                raise _refuse(
                    field,
                    f"{field} contains a lone UTF-16 surrogate (\\u{ord(match.group()):04x}) at character "
                    f"{match.start()}: it is not valid Unicode text",
                )
            continue
        if not isinstance(value, dict | list):
            continue
        if depth >= contracts.MAX_JSON_DEPTH:
            field = path or "body"
            raise _refuse(field, f"the JSON nests deeper than {contracts.MAX_JSON_DEPTH} levels at {field}")
        if isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    raise _refuse(path or "body", "a key contains a lone UTF-16 surrogate: it is not valid Unicode")
                stack.append((item, _field(path, key), depth + 1))
        else:
            stack.extend((item, _field(path, index), depth + 1) for index, item in enumerate(value))


def decode_json_body(raw: bytes | str | None) -> Any:
    """The request body as JSON, strictly: an empty body is `{}`; anything doubtful is a 400."""
    if raw is None or len(raw) == 0:
        return {}
    if isinstance(raw, str):  # API Gateway hands a text body over as a string
        try:
            raw = raw.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _refuse("body", f"the request body is not valid Unicode at character {exc.start}") from exc
    if len(raw) > contracts.MAX_REQUEST_BODY_BYTES:
        raise _refuse(
            "body",
            f"the request body is {len(raw):,} bytes; Backdrop accepts at most {contracts.MAX_REQUEST_BODY_BYTES:,}",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refuse("body", f"the request body is not valid UTF-8 (byte {exc.start}: {raw[exc.start]:#04x})") from exc
    try:
        data = json.loads(
            text,
            object_pairs_hook=_no_duplicate_keys,
            parse_float=_finite_float,
            parse_int=_bounded_int,
            parse_constant=_no_constant,
        )
    except RecursionError as exc:
        raise _refuse("body", f"the JSON nests far deeper than {contracts.MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:  # JSONDecodeError: its message says what and where
        raise _refuse("body", f"the request body is not valid JSON: {exc}") from exc
    _check_tree(data)
    return data


def request_json(request: Any) -> Any:
    """The strictly decoded JSON body of a Chalice request."""
    try:
        raw = request.raw_body  # encodes a text body as UTF-8: a lone surrogate fails here on AWS
    except UnicodeEncodeError as exc:
        raise _refuse("body", f"the request body is not valid Unicode at character {exc.start}") from exc
    return decode_json_body(raw)


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
        message = "the request body must be a JSON object"
        raise BadRequest(message, details=[{"field": "body", "message": message}])
    return body


def require_list(body: Any, field: str, min_items: int, max_items: int) -> list[Any]:
    value = require_object(body).get(field)
    if not isinstance(value, list):
        raise ValidationError(f"{field} must be a list", details=[{"field": field, "message": "must be a list"}])
    if not min_items <= len(value) <= max_items:
        message = f"{field} must have {min_items} to {max_items:,} items, not {len(value):,}"
        raise ValidationError(message, details=[{"field": field, "message": message}])
    return value
