"""Verify Backdrop's completion webhooks in your receiver.

    from frontend.webhooks import verify_webhook, WebhookSignatureError

    try:
        verify_webhook(secret, raw_body, request.headers.get("Backdrop-Signature"))
    except WebhookSignatureError:
        return 400  # not from Backdrop, tampered with, or replayed

`secret` is yours: GET /webhooks/secret (or `backdrop webhook-secret`). Pass the body exactly as it
arrived; the header carries the timestamp (`t=`) and the HMAC-SHA256 (`v1=`) of `"{t}." + body`.
A signature whose timestamp is more than five minutes from your clock is refused, so a captured
request cannot be replayed later. Drop a `Backdrop-Delivery` id you have already handled: a
webhook is retried until your receiver answers 2xx.
"""

from __future__ import annotations

from chalicelib.core.webhook_rules import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    WebhookSignatureError,
    verify_signature,
)

verify_webhook = verify_signature

__all__ = ["DELIVERY_HEADER", "EVENT_HEADER", "SIGNATURE_HEADER", "WebhookSignatureError", "verify_webhook"]
