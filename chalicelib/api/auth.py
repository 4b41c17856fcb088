"""Who is calling: the owner is the Cognito ID token's `sub`, from verified authorizer claims."""

from __future__ import annotations

import re
from typing import Any, Final

from chalicelib.core.errors import Unauthorized

# A Cognito user's `sub` is a UUID (docs/aws-notes.md#n86-whole-string-patterns-and-cognito-sub):
# anything else never came from the user pool. fullmatch, and no `$`: `$` also matches before a
# final newline, and "<uuid>\n" would be a different owner with the same look.
COGNITO_SUB_RE: Final = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
SUB_RE: re.Pattern[str] = COGNITO_SUB_RE  # the suite's hand-made tokens widen it (tests/conftest.py)


def is_user_id(sub: object) -> bool:
    """Whether `sub` is exactly a Cognito user id (the whole string)."""
    return isinstance(sub, str) and SUB_RE.fullmatch(sub) is not None


def owner_from_request(request: Any) -> str:
    """The caller's `sub`, or 401.

    API Gateway's Cognito authorizer verifies the token and passes its claims in the request
    context. Chalice's local gateway does not verify tokens, so the app refuses any request that
    reaches it without claims or with a `sub` that is not exactly a UUID (defence in depth: the
    owner becomes part of S3 keys and DynamoDB keys; it never trusts a header it did not get
    through the authorizer).
    """
    context = getattr(request, "context", None) or {}
    authorizer = context.get("authorizer") or {}
    claims = authorizer.get("claims") if isinstance(authorizer, dict) else None
    if not isinstance(claims, dict):
        raise Unauthorized("sign in first: this route needs a valid Cognito ID token in the Authorization header")
    if str(claims.get("token_use", "id")) != "id":
        raise Unauthorized("use the Cognito ID token, not the access token")
    sub = claims.get("sub")
    if not is_user_id(sub):
        raise Unauthorized("the token carries no usable user id (sub must be a Cognito user id, a UUID)")
    return str(sub)


def email_from_request(request: Any) -> str | None:
    """The caller's verified email (the ID token's `email` claim), where job emails go; None if
    the token carries none."""
    context = getattr(request, "context", None) or {}
    authorizer = context.get("authorizer") or {}
    claims = authorizer.get("claims") if isinstance(authorizer, dict) else None
    email = claims.get("email") if isinstance(claims, dict) else None
    return email if isinstance(email, str) and "@" in email and len(email) <= 254 else None
