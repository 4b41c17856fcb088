"""Who is calling: the owner is the Cognito ID token's `sub`, from verified authorizer claims."""

from __future__ import annotations

from typing import Any

from chalicelib import contracts
from chalicelib.errors import Unauthorized


def owner_from_request(request: Any) -> str:
    """The caller's `sub`, or 401.

    API Gateway's Cognito authorizer verifies the token and passes its claims in the request
    context. Chalice's local gateway does not verify tokens, so the app refuses any request that
    reaches it without claims or with a `sub` that could not be a Cognito user id (defence in
    depth; it never trusts a header it did not get through the authorizer).
    """
    context = getattr(request, "context", None) or {}
    authorizer = context.get("authorizer") or {}
    claims = authorizer.get("claims") if isinstance(authorizer, dict) else None
    if not isinstance(claims, dict):
        raise Unauthorized("sign in first: this route needs a valid Cognito ID token in the Authorization header")
    if str(claims.get("token_use", "id")) != "id":
        raise Unauthorized("use the Cognito ID token, not the access token")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not contracts.OWNER_RE.match(sub):
        raise Unauthorized("the token carries no usable user id (sub)")
    return sub


def email_from_request(request: Any) -> str | None:
    """The caller's verified email (the ID token's `email` claim), where job emails go; None if
    the token carries none."""
    context = getattr(request, "context", None) or {}
    authorizer = context.get("authorizer") or {}
    claims = authorizer.get("claims") if isinstance(authorizer, dict) else None
    email = claims.get("email") if isinstance(claims, dict) else None
    return email if isinstance(email, str) and "@" in email and len(email) <= 254 else None
