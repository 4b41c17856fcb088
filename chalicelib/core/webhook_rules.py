"""What a completion webhook is, for the server and for its receivers: the headers, the
signature scheme (HMAC-SHA256 over "{t}." + body; chalicelib/delivery/webhooks.py sends it), the delivery
statuses, and which URLs may receive one (https, no credentials, public addresses only:
docs/aws-notes.md#n85-addresses-a-webhook-may-not-reach).

Standard library only: the CLI checks a --webhook URL and verifies a received signature with
these very functions, without the server's sender.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final
from urllib.parse import urlsplit

from chalicelib.core import contracts

SIGNATURE_HEADER: Final = "Backdrop-Signature"
EVENT_HEADER: Final = "Backdrop-Event"
DELIVERY_HEADER: Final = "Backdrop-Delivery"
JOB_FINISHED: Final = "job.finished"
SECRET_PREFIX: Final = "whsec_"
USER_AGENT: Final = "Backdrop-Webhooks/1"
MAX_RESPONSE_READ: Final = 4096  # bytes of the receiver's answer kept for the error message

# what the job's `webhook.status` says
PENDING: Final = "PENDING"
RETRYING: Final = "RETRYING"
DELIVERED: Final = "DELIVERED"
FAILED: Final = "FAILED"
REFUSED: Final = "REFUSED"  # the URL (or what it resolves to now) is not allowed: never retried


class UnsafeWebhookUrl(ValueError):
    """The URL may not receive webhooks (scheme, credentials, or an address that is not public)."""


class WebhookSignatureError(ValueError):
    """A webhook request whose signature is missing, wrong or outside the replay window."""


# ------------------------------------------------------------------------------ signing


def new_secret() -> str:
    import secrets

    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `{timestamp}.{body}` under `secret`."""
    return hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify_signature(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    tolerance_s: int = contracts.WEBHOOK_SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check a `Backdrop-Signature` header against the raw request body; returns its timestamp.

    Raises WebhookSignatureError when the header is missing or malformed, when no `v1` signature
    matches (constant-time comparison), or when the timestamp is more than `tolerance_s` seconds
    from now (a replay). Pass the body exactly as received: re-serialised JSON will not match.
    """
    if not header:
        raise WebhookSignatureError(f"no {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise WebhookSignatureError(f"{SIGNATURE_HEADER} must look like t=<unix seconds>,v1=<hex>")
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > tolerance_s:
        raise WebhookSignatureError(
            f"the signature's timestamp is {abs(age):.0f} s {'old' if age > 0 else 'ahead'}; "
            f"at most {tolerance_s} s is accepted (a replay?)"
        )
    expected = sign(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise WebhookSignatureError("the signature does not match the body and the secret")
    return timestamp


# ------------------------------------------------------------------------------ where it may go


@dataclass(frozen=True)
class DeliveryPolicy:
    """What a webhook URL may point at. The default is what every deployment uses; tests pass a
    policy that also allows plain HTTP to a loopback address, for a receiver on 127.0.0.1."""

    allow_loopback: bool = False
    allow_plain_http: bool = False


PRODUCTION: Final = DeliveryPolicy()


# Address blocks that are not globally reachable, from IANA's special-purpose registries, written
# out so that the verdict does not depend on the Python version's `ipaddress` tables (3.11's
# `is_global` still calls fec0::/10, 3fff::/20 and 64:ff9b:1::/48 global)
# (docs/aws-notes.md#n85-addresses-a-webhook-may-not-reach).
_NOT_GLOBAL_V4: Final = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
)  # fmt: skip
# inside 2000::/3, the only IPv6 global unicast space (RFC 4291 2.4); everything outside it
# (::/8, 100::/64, fc00::/7, fe80::/10, fec0::/10, ff00::/8, 5f00::/16...) is refused as a whole
_GLOBAL_UNICAST_V6: Final = "2000::/3"
_NOT_GLOBAL_V6: Final = ("2001::/23", "2001:db8::/32", "3fff::/20")


@lru_cache(maxsize=1)
def _not_global() -> tuple[Any, ...]:
    import ipaddress

    return tuple(ipaddress.ip_network(n) for n in (*_NOT_GLOBAL_V4, *_NOT_GLOBAL_V6))


def _is_public(ip: Any) -> bool:
    import ipaddress

    if ip.version == 6 and ip not in ipaddress.ip_network(_GLOBAL_UNICAST_V6):
        return False
    return bool(ip.is_global) and not ip.is_multicast and not any(ip in net for net in _not_global())


def _ipv6_form(ip: Any) -> tuple[str, list[Any], bool] | None:
    """The IPv4 address(es) an IPv6 address carries: (form, IPv4s, routable) or None.

    `routable` False: a form that is never a reachable destination whatever IPv4 it carries
    (refused outright); True: the IPv6 address is judged and so is every IPv4 it carries."""
    import ipaddress

    value = int(ip)
    low = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    top = value >> 32  # the first 96 bits
    if ip.ipv4_mapped is not None:  # ::ffff:0:0/96 (RFC 4291 2.5.5.2): the IPv4 address itself
        return "IPv4-mapped", [ip.ipv4_mapped], True
    if top == 0 and value > 1:  # ::/96 but not :: or ::1 (RFC 4291 2.5.5.1, deprecated)
        return "IPv4-compatible", [low], False
    if top == 0xFFFF0000:  # ::ffff:0:0:0/96 (RFC 2765 2.1, SIIT)
        return "IPv4-translated", [low], False
    if top == 0x0064FF9B << 64:  # 64:ff9b::/96 (RFC 6052 2.1), the NAT64 well-known prefix
        return "NAT64", [low], True
    if value >> 80 == 0x0064FF9B0001:  # 64:ff9b:1::/48 (RFC 8215): local-use NAT64
        return "local-use NAT64", [low], False
    if ip.sixtofour is not None:  # 2002::/16 (RFC 3056)
        return "6to4", [ip.sixtofour], True
    if ip.teredo is not None:  # 2001::/32 (RFC 4380): server, and the client de-obfuscated
        return "Teredo", [ip.teredo[1], ip.teredo[0]], False
    return None


def address_problem(address: str, policy: DeliveryPolicy) -> str | None:
    """Why an address may not receive a webhook, or None. Every IPv6 form that carries an IPv4
    address is normalised and the IPv4 address judged too."""
    import ipaddress  # only webhook paths need it: kept out of the API's cold start

    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone
    except ValueError:
        return f"{address!r} is not an IP address"
    judged: list[tuple[str, Any]] = [("", ip)]
    if isinstance(ip, ipaddress.IPv6Address):
        form = _ipv6_form(ip)
        if form is not None:
            name, carried, routable = form
            if not routable:
                return f"{address} is not a public address ({name} form of {carried[0]}: not globally reachable)"
            # a mapped address is its IPv4 address (a dual-stack socket connects to that) and a
            # NAT64 well-known one reaches its IPv4 address: that address alone decides
            judged = [] if name in ("IPv4-mapped", "NAT64") else judged
            judged += [(f" ({name} form of {v4})", v4) for v4 in carried]
    for how, candidate in judged:
        if candidate.is_loopback and policy.allow_loopback:
            continue
        if not _is_public(candidate):
            return f"{address}{how} is not a public address (private, loopback, link-local or reserved)"
    return None


def check_url_syntax(url: Any, policy: DeliveryPolicy = PRODUCTION) -> str:
    """The problem with a webhook URL as written (before any lookup), or "" when it is usable."""
    if not isinstance(url, str) or not url:
        return "webhookUrl must be an https:// URL"
    if len(url) > contracts.MAX_WEBHOOK_URL_LENGTH:
        return f"webhookUrl is longer than {contracts.MAX_WEBHOOK_URL_LENGTH} characters"
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        return "webhookUrl contains spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"webhookUrl is not a valid URL: {exc}"
    schemes = ("https", "http") if policy.allow_plain_http else ("https",)
    if parts.scheme not in schemes:
        return "webhookUrl must use https:// (plain http is refused: the body would travel unencrypted)"
    if not parts.hostname:
        return "webhookUrl has no host"
    if parts.username is not None or parts.password is not None:
        return "webhookUrl must not carry credentials (user:password@)"
    if parts.fragment:
        return "webhookUrl must not have a #fragment"
    if port == 0:
        return "webhookUrl has port 0"
    try:
        parts.hostname.encode("idna")
    except UnicodeError:
        return "webhookUrl's host is not a valid domain name"
    literal = ip_literal(parts.hostname)
    if literal is not None:
        problem = address_problem(literal, policy)
        if problem:
            return f"webhookUrl points at {problem}"
    return ""


def ip_literal(host: str) -> str | None:
    """The address a host written as an IP address means, or None for a name. The shorthand
    IPv4 forms that the C resolver reads as addresses (`2130706433`, `0x7f.1`, `0177.0.0.1`,
    `127.1`) count as addresses: they never reach DNS, so they are judged as written."""
    import ipaddress

    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefx." for c in host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))  # inet_aton(3): the forms getaddrinfo takes
        except OSError:
            return None
    return None
