"""Every pattern that checks a user's input matches the whole string: `$` also matches before a
final newline, so "1:1\\n" or "<uuid>\\n" passed. And a token's `sub` must be exactly a UUID."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from chalicelib.api import auth, openapi
from chalicelib.catalogue.schemas import ecma
from chalicelib.core import contracts
from chalicelib.core.backgrounds import ASPECT_RE, COLOR_RE, parse_placement
from chalicelib.core.errors import Unauthorized
from chalicelib.core.validation import Problems

HEX = "0123456789abcdef" * 2
REF = f"{HEX}/{HEX}.png"
# (pattern, a value it accepts)
PATTERNS = [
    (contracts.JOB_ID_RE, "20261125T101500Z-3f9a1c2b7d4e"),
    (contracts.IMAGE_ID_RE, HEX),
    (contracts.IMAGE_REF_RE, REF),
    (contracts.OWNER_RE, "owner-1"),
    (contracts.UPLOAD_KEY_RE, contracts.upload_key("owner-1", REF)),
    (COLOR_RE, "#fff"),
    (ASPECT_RE, "1:1"),
    (auth.COGNITO_SUB_RE, "290529c2-c764-4b44-a8a4-5e1bd3c1f0a7"),  # fixed: xdist workers must collect the same ids
]


@pytest.mark.parametrize(("pattern", "good"), PATTERNS, ids=lambda p: getattr(p, "pattern", p)[:24])
@pytest.mark.parametrize("tail", ["\n", "\r\n", "\n\n", " "])
def test_a_pattern_refuses_its_value_with_a_trailing_newline(pattern: Any, good: str, tail: str) -> None:
    assert pattern.match(good) and pattern.fullmatch(good)
    # .match is what the call sites use (some in files this change does not touch)
    assert pattern.match(good + tail) is None and pattern.search(good + tail) is None


def test_is_job_id_refuses_a_trailing_newline() -> None:
    assert contracts.is_job_id("20261125T101500Z-3f9a1c2b7d4e")
    assert not contracts.is_job_id("20261125T101500Z-3f9a1c2b7d4e\n")


@pytest.mark.parametrize("aspect", ["1:1\n", "4:5\n", "1:1\r\n"])
def test_a_placement_aspect_with_a_trailing_newline_is_refused(aspect: str) -> None:
    problems = Problems("the job is not valid")
    parse_placement({"aspect": aspect}, problems)
    assert [(d["field"], d["code"]) for d in problems.items] == [("placement.aspect", "PLACEMENT_INVALID")]
    fine = Problems("the job is not valid")
    assert parse_placement({"aspect": "1:1"}, fine) is not None and not fine


def test_the_openapi_document_keeps_ecma_patterns() -> None:
    # JSON Schema patterns are ECMA-262, which has no \\Z: the document writes $ (the end itself there)
    import app as backdrop_app

    assert ecma(ASPECT_RE.pattern) == "^([1-9][0-9]{0,2}):([1-9][0-9]{0,2})$"
    assert all(ecma(p.pattern).endswith("$") for p, _ in PATTERNS)
    text = str(openapi.document(backdrop_app.app.routes))
    assert "\\Z" not in text and ecma(contracts.IMAGE_ID_RE.pattern) in text


# ------------------------------------------------------------------------------ a token's sub


def _request(claims: dict[str, Any]) -> Any:
    return SimpleNamespace(context={"authorizer": {"claims": claims}})


@pytest.fixture
def deployed_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "SUB_RE", auth.COGNITO_SUB_RE)  # undo the suite's readable owners


@pytest.mark.usefixtures("deployed_rule")
@pytest.mark.parametrize(
    "sub",
    [
        "7d8ca528-4931-4254-9273-ea5ee853f271\n",  # a trailing newline: another owner, same look
        "7d8ca528-4931-4254-9273-ea5ee853f271 ",
        "owner-1",  # key-safe, but not a Cognito user id
        "7d8ca52849314254927 3ea5ee853f271",
        "7d8ca528-4931-4254-9273-ea5ee853f27",
        "../../victim",
        "",
        12345,
        None,
    ],
)
def test_a_sub_that_is_not_exactly_a_uuid_is_refused(sub: Any) -> None:
    with pytest.raises(Unauthorized, match="sub"):
        auth.owner_from_request(_request({"sub": sub, "token_use": "id"}))


@pytest.mark.usefixtures("deployed_rule")
def test_a_uuid_sub_is_the_owner() -> None:
    sub = "7d8ca528-4931-4254-9273-ea5ee853f271"
    assert auth.owner_from_request(_request({"sub": sub, "token_use": "id"})) == sub


def test_the_suites_readable_owners_are_still_whole_strings() -> None:
    assert auth.owner_from_request(_request({"sub": "owner-1"})) == "owner-1"
    with pytest.raises(Unauthorized):
        auth.owner_from_request(_request({"sub": "owner-1\n"}))


# ------------------------------------------------------------------------------ the local stack's verifier


def test_the_local_stacks_verifier_refuses_a_sub_that_is_not_exactly_a_uuid() -> None:
    from joserfc import jwt
    from joserfc.jwk import KeySet, RSAKey

    from backend.local.gateway import CognitoTokenVerifier

    key = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
    verifier = CognitoTokenVerifier("http://127.0.0.1:9/jwks.json", "https://issuer", "client", clock=lambda: 1000)
    verifier._keys = KeySet([key])  # no JWKS fetch

    def token(sub: Any) -> str:
        claims = {"sub": sub, "iss": "https://issuer", "aud": "client", "token_use": "id", "exp": 2000}
        return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)

    good = "7d8ca528-4931-4254-9273-ea5ee853f271"
    assert verifier.claims(token(good))["sub"] == good
    for bad in (good + "\n", "owner-1", good.upper() + "x"):
        with pytest.raises(ValueError, match="sub"):
            verifier.claims(token(bad))
