"""Completion webhooks: where they may go, how they are signed, and how they are delivered.

A job may carry a `webhookUrl`. When the job finishes (COMPLETED, PARTIAL, FAILED or CANCELLED)
Backdrop POSTs a small JSON document there, signed with its owner's secret:

    Backdrop-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}." + body)>

A receiver recomputes the HMAC over the timestamp, a dot and the raw body, compares it in
constant time and refuses a timestamp more than WEBHOOK_SIGNATURE_TOLERANCE_SECONDS away from its
clock (a replayed request carries an old timestamp, and changing it breaks the signature);
`verify_signature` does exactly that (frontend/webhooks.py re-exports it for receivers).
`Backdrop-Delivery` is the same on every retry of one event, so a receiver can drop duplicates.

Server-side request forgery: only `https://` URLs, without credentials, are accepted, and the
host must resolve only to public addresses (no private, loopback, link-local, shared, reserved or
multicast address, including IPv4 written inside IPv6 in any of its forms and the shorthand IPv4
forms such as `2130706433`: docs/aws-notes.md#n85-addresses-a-webhook-may-not-reach). This is checked when the job is submitted
and again at every attempt, where the connection goes to the very address that was checked (no
second lookup to rebind) and redirects are not followed. A test can allow plain HTTP to loopback
by passing `DeliveryPolicy(allow_loopback=True, allow_plain_http=True)`; there is no setting that
does this in a deployment.

Delivery never fails the job: every attempt's outcome is recorded on the job (`webhook`), with
up to WEBHOOK_ATTEMPTS attempts spaced by exponential backoff with full jitter.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final
from urllib.parse import urlsplit

from chalicelib import contracts
from chalicelib.errors import ValidationError

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class Destination:
    """A checked URL: connect to `address`, send `host_header`, verify TLS for `host`."""

    scheme: str
    host: str
    port: int
    target: str  # path and query
    address: str  # the checked IP address the connection goes to

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


Resolver = Callable[[str, int], list[str]]


def resolve_host(host: str, port: int) -> list[str]:
    """Every address the host resolves to (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


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


def _address_problem(address: str, policy: DeliveryPolicy) -> str | None:
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
    literal = _ip_literal(parts.hostname)
    if literal is not None:
        problem = _address_problem(literal, policy)
        if problem:
            return f"webhookUrl points at {problem}"
    return ""


def _ip_literal(host: str) -> str | None:
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


def _connect_address(address: str) -> str:
    """The address to connect to: an IPv4-mapped IPv6 address is its IPv4 address."""
    import ipaddress

    ip = ipaddress.ip_address(address)
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return str(mapped or ip)


def check_destination(url: str, policy: DeliveryPolicy = PRODUCTION, resolve: Resolver | None = None) -> Destination:
    """Check the URL and every address its host resolves to now; the destination to connect to.
    Raises UnsafeWebhookUrl naming the problem."""
    problem = check_url_syntax(url, policy)
    if problem:
        raise UnsafeWebhookUrl(problem)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    literal = _ip_literal(host)
    if literal is not None:
        host, addresses = literal, [literal]  # TLS and Host name the address as it is normalised
    else:
        try:
            addresses = (resolve or resolve_host)(host.encode("idna").decode("ascii"), port)
        except (OSError, UnicodeError) as exc:
            raise UnsafeWebhookUrl(f"webhookUrl's host {host} does not resolve: {exc}") from exc
        if not addresses:
            raise UnsafeWebhookUrl(f"webhookUrl's host {host} does not resolve")
    for address in addresses:  # every one: a name with one private address is refused
        refused = _address_problem(address, policy)
        if refused:
            raise UnsafeWebhookUrl(f"webhookUrl's host {host} resolves to {refused}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # the connection goes to this checked address: no second lookup can rebind the name
    return Destination(parts.scheme, host, port, target, _connect_address(addresses[0]))


def validate_webhook_url(url: str, policy: DeliveryPolicy = PRODUCTION, resolve: Resolver | None = None) -> None:
    """At submit: a ValidationError on `webhookUrl` when the URL cannot receive webhooks."""
    try:
        check_destination(url, policy, resolve)
    except UnsafeWebhookUrl as exc:
        raise ValidationError(str(exc), details=[{"field": "webhookUrl", "message": str(exc)}]) from exc


# ------------------------------------------------------------------------------ delivery


def payload(job: Mapping[str, Any]) -> dict[str, Any]:
    """What a finished job's webhook says (no presigned links: they would expire)."""
    return {
        "event": JOB_FINISHED,
        "deliveryId": delivery_id(job),
        "jobId": job["jobId"],
        "status": job["status"],
        "model": job.get("model"),
        "imageCount": job.get("imageCount"),
        "counts": job.get("counts"),
        "createdAt": job.get("createdAt"),
        "finishedAt": job.get("finishedAt"),
        "links": {"job": f"/jobs/{job['jobId']}", "report": f"/jobs/{job['jobId']}/report"},
    }


def delivery_id(job: Mapping[str, Any]) -> str:
    return f"{job['jobId']}.{job['status']}"


Poster = Callable[[Destination, bytes, Mapping[str, str], float], tuple[int, bytes]]


def post(destination: Destination, body: bytes, headers: Mapping[str, str], timeout_s: float) -> tuple[int, bytes]:
    """POST to the checked address itself (TLS verified for the host name), no redirects."""
    import urllib3
    from botocore.httpsession import get_cert_path

    timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
    pool: Any
    if destination.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            destination.address,
            destination.port,
            timeout=timeout,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=get_cert_path(True),
            server_hostname=destination.host,
            assert_hostname=destination.host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(destination.address, destination.port, timeout=timeout, retries=False)
    try:
        response = pool.urlopen(
            "POST",
            destination.target,
            body=body,
            headers={**headers, "Host": destination.host_header},
            redirect=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            answer = response.read(MAX_RESPONSE_READ)
        finally:
            response.release_conn()
        return response.status, answer
    finally:
        pool.close()


class WebhookSender:
    """Deliver a finished job's webhook, given the job store; the network, the resolver, the
    clock and the waits are injectable so tests are exact and fast."""

    def __init__(
        self,
        store: Any,
        *,
        policy: DeliveryPolicy = PRODUCTION,
        resolve: Resolver | None = None,
        poster: Poster = post,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        attempts: int = contracts.WEBHOOK_ATTEMPTS,
    ) -> None:
        self.store = store
        self.policy = policy
        self.resolve = resolve
        self.poster = poster
        self.sleep = sleep
        self.clock = clock
        self.attempts = attempts

    def backoff_s(self, retry: int) -> float:
        """Full jitter: a random wait up to base * 4**(retry-1) seconds before retry `retry`."""
        return random.uniform(0, contracts.WEBHOOK_BACKOFF_BASE_SECONDS * 4 ** (retry - 1))

    def deliver(self, job_id: str) -> dict[str, Any]:
        """Send the job's webhook if it has one and it was not delivered yet; returns (and
        records on the job) what happened. Never raises for the receiver's faults."""
        job = self.store.get_job(job_id)
        webhook = (job or {}).get("webhook")
        if not job or not webhook or not webhook.get("url"):
            return {"status": "NONE"}
        if webhook.get("status") in (DELIVERED, REFUSED):
            return dict(webhook)  # a repeated invocation sends nothing twice
        if job["status"] not in {s.value for s in contracts.TERMINAL_JOB_STATUSES}:
            return {**webhook, "status": webhook.get("status", PENDING), "note": "the job has not finished"}
        secret = self.store.webhook_secret(job["owner"]) or self.store.put_webhook_secret(
            job["owner"], new_secret(), replace=False
        )
        body = json.dumps(payload(job), separators=(",", ":"), sort_keys=True).encode()
        record: dict[str, Any] = {"url": webhook["url"], "status": PENDING, "event": JOB_FINISHED, "attempts": 0}
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                self.sleep(self.backoff_s(attempt - 1))
            record["attempts"] = attempt
            record["lastAttemptAt"] = contracts.utc_now_iso()
            try:
                destination = check_destination(webhook["url"], self.policy, self.resolve)
            except UnsafeWebhookUrl as exc:  # checked again now: DNS may have changed since submit
                record.update(status=REFUSED, lastError=str(exc))
                return self._record(job_id, record)
            timestamp = int(self.clock())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                EVENT_HEADER: JOB_FINISHED,
                DELIVERY_HEADER: delivery_id(job),
                SIGNATURE_HEADER: signature_header(secret["secret"], timestamp, body),
            }
            try:
                status, answer = self.poster(destination, body, headers, contracts.WEBHOOK_TIMEOUT_SECONDS)
            except Exception as exc:  # connection refused, TLS, timeout: the receiver's side
                record["lastError"] = f"{type(exc).__name__}: {exc}"[:500]
                record.pop("responseStatus", None)
            else:
                record["responseStatus"] = status
                if 200 <= status < 300:
                    record.update(status=DELIVERED, deliveredAt=contracts.utc_now_iso())
                    record.pop("lastError", None)
                    return self._record(job_id, record)
                text = answer.decode("utf-8", "replace").strip()[:200]
                record["lastError"] = f"the receiver answered HTTP {status}" + (f": {text}" if text else "")
            if attempt < self.attempts:
                record["status"] = RETRYING
                self._record(job_id, record)
        record["status"] = FAILED
        return self._record(job_id, record)

    def _record(self, job_id: str, record: dict[str, Any]) -> dict[str, Any]:
        try:
            self.store.record_webhook(job_id, record)
        except Exception:  # the job may have been deleted meanwhile: nothing to record it on
            log.warning("could not record the webhook outcome of job %s", job_id, exc_info=True)
        return dict(record)


# ------------------------------------------------------------------------------ triggering


class LambdaWebhookTrigger:
    """Start the webhook sender function asynchronously (a cancelled job has no workflow left to
    run it); Lambda queues the event, so the caller does not wait for the receiver
    (docs/aws-notes.md#n51-lambda-asynchronous-invocation)."""

    def __init__(self, lambda_client: Any, function_name: str) -> None:
        self.lambda_client = lambda_client
        self.function_name = function_name

    def __call__(self, job_id: str, owner: str) -> None:
        self.lambda_client.invoke(
            FunctionName=self.function_name,
            InvocationType="Event",
            Payload=json.dumps({"jobId": job_id, "owner": owner}).encode(),
        )
