"""The published document and the API agree on POST /jobs bodies, on generated bodies.

Bodies are generated from docs/openapi.json's JobRequest (Hypothesis strategies built from the
schema by `_strategy` below: hypothesis-jsonschema 0.23.1, its latest release, no longer runs on
Hypothesis 6.170), then half of them are broken in one place (a value replaced by another JSON value, or an unknown key added).
The document's verdict is a JSON Schema validator's; the API's is its answer through Chalice's test
client on moto:

- a body the document refuses is refused by the API (400, the one error shape) naming the field
  the document names, or a field under it (`background` → `background.color`);
- a body the document accepts is not refused for its shape: the models that validate it find
  nothing, and the API never answers 5xx (it may still refuse what a schema cannot say: an
  `imageRef` never uploaded, a model's own limits, cross-field rules).

Seeded and bounded (derandomize, 100 examples): the same bodies on every run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

import app as backdrop_app
from chalicelib.catalogue import schemas

DOC = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text())
OWNER = "owner-agreement"


def _python_patterns(schema: Any) -> Any:
    """The document's patterns as Python's `re.search` reads them: ECMA-262's closing `$` (no `m`
    flag) is the end of the string, which Python spells `\\Z`
    (docs/aws-notes.md#n90-pydantic-strict-json-validation-and-json-schema-patterns)."""
    if isinstance(schema, list):
        return [_python_patterns(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _python_patterns(value) for key, value in schema.items()}
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and pattern.endswith("$") and not pattern.endswith("\\$"):
        out["pattern"] = pattern[:-1] + "\\Z"
    return out


# how the API words a problem of a body's shape (a type, an unknown or a missing field)
SHAPE_WORDS = re.compile(
    r"unknown field|is required$|must be an? (?:text|whole number|number|true or false|list|JSON object)$"
)
COMPONENTS = _python_patterns(DOC["components"])
JOB_SCHEMA = {"$ref": "#/components/schemas/JobRequest", "components": COMPONENTS}
VALIDATOR = Draft202012Validator(JOB_SCHEMA)

# what replaces a value: JSON of every kind, numbers of sizes JSON and DynamoDB both hold
_JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_JSON = st.recursive(
    _JSON_LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = {
            **COMPONENTS["schemas"][schema["$ref"].rsplit("/", 1)[1]],
            **{k: v for k, v in schema.items() if k != "$ref"},
        }
    return schema


def _number(schema: dict[str, Any], integer: bool) -> st.SearchStrategy[Any]:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if integer:
        return st.integers(int(low) if low is not None else -(10**9), int(high) if high is not None else 10**9)
    return st.floats(
        low if low is not None else -1e9,
        high if high is not None else 1e9,
        exclude_min="exclusiveMinimum" in schema,
        exclude_max="exclusiveMaximum" in schema,
        allow_nan=False,
        allow_infinity=False,
        # JSON Schema cannot say it: a magnitude below DynamoDB's 1E-130 is refused by the decoder
    ).filter(lambda x: x == 0 or abs(x) >= 1e-130)


def _string(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), min(schema.get("maxLength", 24), 24)
    if "pattern" in schema:
        return st.from_regex(schema["pattern"]).filter(lambda s: low <= len(s) <= schema.get("maxLength", 10**6))
    return st.text(min_size=low, max_size=max(low, high))


def _strategy(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Instances of the JSON Schema subset the document uses (the generated request components)."""
    schema = _resolve(schema)
    if "oneOf" in schema or "anyOf" in schema:
        return st.one_of([_strategy(branch) for branch in schema.get("oneOf", schema.get("anyOf", []))])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kinds = schema.get("type", "object")
    if isinstance(kinds, list):
        return st.one_of([_strategy({**schema, "type": kind}) for kind in kinds])
    if kinds == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: _strategy(v) for k, v in properties.items() if k in required},
            optional={k: _strategy(v) for k, v in properties.items() if k not in required},
        )
    if kinds == "array":
        items = _strategy(schema.get("items", {}))
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 3), 3))
    simple: dict[str, st.SearchStrategy[Any]] = {"null": st.none(), "boolean": st.booleans()}
    if kinds in simple:
        return simple[kinds]
    if kinds in ("integer", "number"):
        return _number(schema, kinds == "integer")
    return _string(schema)


def _containers(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every object and list in a body (the body itself is `()`)."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        found.append(path)
        for key, item in value.items():
            found += _containers(item, (*path, key))
    elif isinstance(value, list):
        found.append(path)
        for index, item in enumerate(value):
            found += _containers(item, (*path, index))
    return found


@st.composite
def _bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = draw(_strategy(JOB_SCHEMA))
    if not draw(st.booleans()):
        return body  # as generated: the document accepts it
    body = json.loads(json.dumps(body))  # a copy to break
    where = draw(st.sampled_from(_containers(body)))
    node: Any = body
    for step in where:
        node = node[step]
    if isinstance(node, dict) and (not node or draw(st.booleans())):
        node[draw(st.sampled_from(["zz", "Prompt", "image_ref", "source2"]))] = draw(_JSON)
    elif isinstance(node, dict):
        node[draw(st.sampled_from(sorted(node)))] = draw(_JSON)
    elif node:
        node[draw(st.integers(0, len(node) - 1))] = draw(_JSON)
    else:
        node.append(draw(_JSON))
    return body


def _field(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _named_by_document(body: Any) -> set[str]:
    """The fields the document refuses, in the API's notation; a missing or unknown key is the
    key's own field (`images[0].imageRef`), as the API names it."""
    fields: set[str] = set()
    for error in VALIDATOR.iter_errors(body):
        where = _field(error.absolute_path)
        prefix = "" if where == "body" else where
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = [k for k in error.validator_value if k not in error.instance]
            fields |= {f"{prefix}.{k}" if prefix else k for k in missing}
        elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = set(error.schema.get("properties", {}))
            fields |= {f"{prefix}.{k}" if prefix else k for k in error.instance if k not in known}
        else:
            fields.add(where)
    return fields


def _covers(named_by_api: set[str], field: str) -> bool:
    return any(n == field or n.startswith((f"{field}.", f"{field}[")) for n in named_by_api) or (
        field == "body" and bool(named_by_api)
    )


@pytest.fixture
def client(resources: dict[str, Any], rekognition: Any) -> Iterator[Client]:
    with Client(backdrop_app.app, stage_name="dev") as test_client:
        yield test_client


def test_generated_job_bodies_are_judged_alike_by_the_document_and_the_api(client, token_for) -> None:
    headers = {"Authorization": token_for(OWNER), "Content-Type": "application/json"}
    seen = {"refused": 0, "accepted": 0}

    @settings(
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure shows the generated body as it was
        max_examples=160,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(body=_bodies())
    def judged_alike(body: dict[str, Any]) -> None:
        refused_by_document = _named_by_document(body)
        answer = client.http.post("/jobs", headers=headers, body=json.dumps(body))
        assert answer.status_code < 500, (body, answer.body)
        if refused_by_document:
            seen["refused"] += 1
            assert answer.status_code == 400, (body, refused_by_document, answer.body)
            error = answer.json_body
            assert set(error) == {"code", "message", "details"}, error
            named = {d.get("field") for d in error["details"] if isinstance(d, dict)}
            missed = [f for f in refused_by_document if not _covers(named, f)]
            assert not missed, (body, missed, error)
        else:
            seen["accepted"] += 1
            assert schemas.problems_of(schemas.JobRequest, body) == [], body
            if answer.status_code == 400:  # refused for what a schema cannot say, never its shape
                problems = answer.json_body["details"]
                assert not [p for p in problems if SHAPE_WORDS.search(str(p.get("message")))], (body, problems)

    judged_alike()
    # both directions were exercised
    assert seen["refused"] >= 20 and seen["accepted"] >= 20, seen


def test_the_stored_settings_are_the_requests_fields_under_the_same_names() -> None:
    """A job's settings (models/base.py JobSettings, stored and given to the workflow by
    `settings_fields`) are POST /jobs fields: the same names on the wire, the same defaults the
    document states. A setting added to JobSettings without its JobRequest field (or under another
    name) fails here; the document's JobSettings component takes each one's type from JobRequest."""
    import dataclasses

    from chalicelib.models.base import JobSettings, settings_fields

    request = {name: info.alias for name, info in schemas.JobRequest.model_fields.items()}
    stored = settings_fields()
    assert set(stored) <= set(request), set(stored) - set(request)
    assert {name: request[name] for name in stored} == stored
    defaults = {f.name: f.default for f in dataclasses.fields(JobSettings)}
    documented = {
        name: info.json_schema_extra["default"]
        for name, info in schemas.JobRequest.model_fields.items()
        if isinstance(info.json_schema_extra, dict) and "default" in info.json_schema_extra and name in defaults
    }
    assert documented and all(defaults[name] == value for name, value in documented.items()), documented
    component = DOC["components"]["schemas"]["JobSettings"]["properties"]
    job = DOC["components"]["schemas"]["JobRequest"]["properties"]
    assert all(component[camel] == job[camel] for name, camel in stored.items() if name != "background")
