"""Webhook signatures (and their verification with a replay window) and where a webhook may go."""

from __future__ import annotations

import socket

import pytest

from chalicelib.delivery import webhooks
from chalicelib.delivery.webhooks import DeliveryPolicy, UnsafeWebhookUrl, WebhookSignatureError, check_destination
from frontend.webhooks import verify_webhook

SECRET = "whsec_test-secret"
BODY = b'{"event":"job.finished","jobId":"20261125T101500Z-3f9a1c2b7d4e","status":"COMPLETED"}'
NOW = 1_790_000_000


def test_a_signed_body_verifies_and_gives_its_timestamp() -> None:
    header = webhooks.signature_header(SECRET, NOW, BODY)
    assert header.startswith(f"t={NOW},v1=") and len(header.split("v1=")[1]) == 64
    assert verify_webhook(SECRET, BODY, header, now=NOW + 10) == NOW


@pytest.mark.parametrize(
    ("body", "secret", "now", "why"),
    [
        (BODY.replace(b"COMPLETED", b"FAILED"), SECRET, NOW, "does not match"),
        (BODY, "whsec_another", NOW, "does not match"),
        (BODY, SECRET, NOW + 301, "old"),  # a replay outside the window
        (BODY, SECRET, NOW - 301, "ahead"),
    ],
)
def test_tampering_another_secret_or_a_replay_is_refused(body: bytes, secret: str, now: int, why: str) -> None:
    header = webhooks.signature_header(SECRET, NOW, BODY)
    with pytest.raises(WebhookSignatureError, match=why):
        verify_webhook(secret, body, header, now=now)


@pytest.mark.parametrize("header", [None, "", "v1=abc", f"t={NOW}", "t=soon,v1=abc"])
def test_a_missing_or_malformed_header_is_refused(header: str | None) -> None:
    with pytest.raises(WebhookSignatureError):
        verify_webhook(SECRET, BODY, header, now=NOW)


def test_a_replayed_timestamp_cannot_be_refreshed_without_the_secret() -> None:
    old = webhooks.signature_header(SECRET, NOW - 3600, BODY)
    forged = old.replace(f"t={NOW - 3600}", f"t={NOW}")
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify_webhook(SECRET, BODY, forged, now=NOW)


def _resolver(*addresses: str):
    def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


def test_a_public_https_url_is_accepted_and_pinned_to_the_checked_address() -> None:
    destination = check_destination("https://hooks.example.com/backdrop?x=1", resolve=_resolver("93.184.215.14"))
    assert (destination.address, destination.port, destination.target) == ("93.184.215.14", 443, "/backdrop?x=1")
    assert destination.host_header == "hooks.example.com"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/x", "https"),
        ("ftp://hooks.example.com/x", "https"),
        ("https://user:pass@hooks.example.com/x", "credentials"),
        ("https://127.0.0.1/x", "not a public address"),
        ("https://10.0.0.8/x", "not a public address"),
        ("https://169.254.169.254/latest/meta-data", "not a public address"),  # instance metadata
        ("https://[::1]/x", "not a public address"),
        ("https://[::ffff:127.0.0.1]/x", "not a public address"),  # IPv4 inside IPv6
        ("https://[fe80::1]/x", "not a public address"),
        ("https://100.64.0.1/x", "not a public address"),  # shared address space
        ("https://224.0.0.1/x", "not a public address"),  # multicast
        ("https://hooks.example.com/x#frag", "fragment"),
        ("https:///x", "no host"),
        ("https://hooks.example.com/ x", "spaces"),
        (f"https://hooks.example.com/{'a' * 2100}", "longer"),
    ],
)
def test_unsafe_urls_are_refused_before_any_lookup(url: str, why: str) -> None:
    def no_lookup(host: str, port: int) -> list[str]:
        raise AssertionError("no DNS lookup for a URL refused as written")

    assert why in webhooks.check_url_syntax(url)
    with pytest.raises(UnsafeWebhookUrl, match=why):
        check_destination(url, resolve=no_lookup)


@pytest.mark.parametrize(
    "addresses",
    [("10.1.2.3",), ("93.184.215.14", "192.168.1.5"), ("2606:2800:220:1::1", "fd00::1"), ("127.0.0.1",)],
)
def test_a_name_is_refused_when_any_address_it_resolves_to_is_not_public(addresses: tuple[str, ...]) -> None:
    with pytest.raises(UnsafeWebhookUrl, match="resolves to"):
        check_destination("https://rebind.example.com/x", resolve=_resolver(*addresses))


def test_a_name_that_does_not_resolve_is_refused() -> None:
    def fail(host: str, port: int) -> list[str]:
        raise socket.gaierror(-2, "Name or service not known")

    with pytest.raises(UnsafeWebhookUrl, match="does not resolve"):
        check_destination("https://nowhere.invalid/x", resolve=fail)


def test_loopback_over_http_only_with_the_test_policy() -> None:
    url = "http://127.0.0.1:8123/hook"
    with pytest.raises(UnsafeWebhookUrl):
        check_destination(url)
    test_only = DeliveryPolicy(allow_loopback=True, allow_plain_http=True)
    assert check_destination(url, test_only).address == "127.0.0.1"
    # the test policy opens loopback only: private networks stay refused
    with pytest.raises(UnsafeWebhookUrl):
        check_destination("http://10.0.0.1/hook", test_only)
