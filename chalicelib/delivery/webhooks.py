"""Completion webhooks: where they may go, how they are signed, and how they are delivered.

The contract (headers, statuses, signing, the URL rules) is chalicelib/core/webhook_rules.py, which the
front ends import too; this module resolves the host, delivers, and triggers the delivery.

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
up to WEBHOOK_ATTEMPTS attempts spaced by exponential backoff with full jitter. Each invocation of
the sender makes one attempt; the waits belong to whoever invokes it (the workflow's Retry, or
Lambda's asynchronous retries after a cancel), so no Lambda is billed for sleeping.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from chalicelib.core import contracts
from chalicelib.core.errors import RetryPolicy, ValidationError
from chalicelib.core.webhook_rules import DELIVERED as DELIVERED
from chalicelib.core.webhook_rules import DELIVERY_HEADER as DELIVERY_HEADER
from chalicelib.core.webhook_rules import EVENT_HEADER as EVENT_HEADER
from chalicelib.core.webhook_rules import FAILED as FAILED
from chalicelib.core.webhook_rules import JOB_FINISHED as JOB_FINISHED
from chalicelib.core.webhook_rules import MAX_RESPONSE_READ as MAX_RESPONSE_READ
from chalicelib.core.webhook_rules import PENDING as PENDING
from chalicelib.core.webhook_rules import PRODUCTION as PRODUCTION
from chalicelib.core.webhook_rules import REFUSED as REFUSED
from chalicelib.core.webhook_rules import RETRYING as RETRYING
from chalicelib.core.webhook_rules import SECRET_PREFIX as SECRET_PREFIX
from chalicelib.core.webhook_rules import SIGNATURE_HEADER as SIGNATURE_HEADER
from chalicelib.core.webhook_rules import USER_AGENT as USER_AGENT
from chalicelib.core.webhook_rules import DeliveryPolicy as DeliveryPolicy
from chalicelib.core.webhook_rules import UnsafeWebhookUrl as UnsafeWebhookUrl
from chalicelib.core.webhook_rules import WebhookSignatureError as WebhookSignatureError
from chalicelib.core.webhook_rules import address_problem as address_problem
from chalicelib.core.webhook_rules import check_url_syntax as check_url_syntax
from chalicelib.core.webhook_rules import ip_literal as ip_literal
from chalicelib.core.webhook_rules import new_secret as new_secret
from chalicelib.core.webhook_rules import sign as sign
from chalicelib.core.webhook_rules import signature_header as signature_header
from chalicelib.core.webhook_rules import verify_signature as verify_signature

log = logging.getLogger(__name__)


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
    literal = ip_literal(host)
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
        refused = address_problem(address, policy)
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


class WebhookRetry(Exception):
    """A delivery attempt failed on the receiver's side and attempts are left: raised so the caller
    retries the whole invocation after a wait it owns (the workflow's Retry on this error name, or
    Lambda's asynchronous retries), instead of the function sleeping between attempts (issue #25)."""


# The workflow's retrier on WebhookRetry (backend/statemachine.py writes it into the ASL): retry n
# waits a random 0..2 * 4**(n-1) s (full jitter), so the attempts match contracts.WEBHOOK_ATTEMPTS.
WEBHOOK_RETRY: Final = RetryPolicy(
    interval_s=int(contracts.WEBHOOK_BACKOFF_BASE_SECONDS),  # ASL IntervalSeconds is a whole number
    max_attempts=contracts.WEBHOOK_ATTEMPTS - 1,
    backoff_rate=contracts.WEBHOOK_BACKOFF_RATE,
)


class WebhookSender:
    """Deliver a finished job's webhook, given the job store: ONE attempt per call, never a wait.
    The attempt number is kept on the job, so a retried invocation continues the count; the
    network, the resolver and the clock are injectable so tests are exact and fast."""

    def __init__(
        self,
        store: Any,
        *,
        policy: DeliveryPolicy = PRODUCTION,
        resolve: Resolver | None = None,
        poster: Poster = post,
        clock: Callable[[], float] = time.time,
        attempts: int = contracts.WEBHOOK_ATTEMPTS,
    ) -> None:
        self.store = store
        self.policy = policy
        self.resolve = resolve
        self.poster = poster
        self.clock = clock
        self.attempts = attempts

    def deliver(self, job_id: str, attempts: int | None = None) -> dict[str, Any]:
        """Make the next attempt at the job's webhook if it has one and it was not delivered yet;
        returns (and records on the job) what happened. Raises WebhookRetry when the receiver
        failed and fewer than `attempts` were made (the caller's retry makes the next one); never
        raises for the receiver's faults otherwise."""
        limit = attempts if attempts is not None else self.attempts
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
        # a retried invocation continues the count; a finished (FAILED) delivery asked again starts anew
        made = int(webhook.get("attempts", 0)) if webhook.get("status") == RETRYING else 0
        attempt = made + 1
        record: dict[str, Any] = {"url": webhook["url"], "status": PENDING, "event": JOB_FINISHED}
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
        else:
            record["responseStatus"] = status
            if 200 <= status < 300:
                record.update(status=DELIVERED, deliveredAt=contracts.utc_now_iso())
                return self._record(job_id, record)
            text = answer.decode("utf-8", "replace").strip()[:200]
            record["lastError"] = f"the receiver answered HTTP {status}" + (f": {text}" if text else "")
        if attempt < limit:
            record["status"] = RETRYING
            self._record(job_id, record)
            raise WebhookRetry(f"attempt {attempt} of {limit}: {record['lastError']}")
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
            # Lambda's own asynchronous retries (two, about 1 and 2 minutes later) make the next
            # attempts when the sender raises WebhookRetry: three in all
            Payload=json.dumps(
                {"jobId": job_id, "owner": owner, "attempts": contracts.WEBHOOK_ASYNC_ATTEMPTS}
            ).encode(),
        )
