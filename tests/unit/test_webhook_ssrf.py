"""Webhook URLs cannot reach what is not on the public Internet, whatever the address is written as.

Every IPv6 form that carries an IPv4 address (compatible, mapped, translated, NAT64 well-known and
local-use, 6to4, Teredo) and the shorthand IPv4 forms are normalised and judged, once as written in
the URL (at submit) and once as what a host name resolves to at delivery (DNS rebinding), where
the connection then goes to the very address that was checked.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

from chalicelib.core.errors import ValidationError
from chalicelib.delivery import webhooks
from chalicelib.delivery.webhooks import DeliveryPolicy, Destination, UnsafeWebhookUrl, WebhookSender, check_destination

# (address as written in a URL host, the IPv4 address it stands for, or "" when it carries none)
NOT_PUBLIC = [
    # the forms in issue #26
    ("::7f00:1", "127.0.0.1"),  # IPv4-compatible loopback
    ("::a9fe:a9fe", "169.254.169.254"),  # IPv4-compatible instance metadata
    ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # NAT64 well-known prefix
    ("64:ff9b:1::a00:1", "10.0.0.1"),  # NAT64 local-use prefix
    ("::ffff:0:7f00:1", "127.0.0.1"),  # IPv4-translated loopback
    ("::ffff:0:a9fe:a9fe", "169.254.169.254"),  # IPv4-translated link-local metadata
    ("::ffff:0:a00:1", "10.0.0.1"),  # IPv4-translated private
    ("::ffff:0:c0a8:101", "192.168.1.1"),
    # the other forms that carry IPv4
    ("::ffff:127.0.0.1", "127.0.0.1"),  # IPv4-mapped
    ("::ffff:a9fe:a9fe", "169.254.169.254"),
    ("::ffff:ac10:1", "172.16.0.1"),
    ("64:ff9b::7f00:1", "127.0.0.1"),
    ("64:ff9b::6440:1", "100.64.0.1"),  # shared address space
    ("64:ff9b:1::8.8.8.8", "8.8.8.8"),  # local-use NAT64 is never global, whatever it carries
    ("2002:7f00:1::1", "127.0.0.1"),  # 6to4
    ("2002:a9fe:a9fe::", "169.254.169.254"),
    ("2002:a00:1::", "10.0.0.1"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1"),  # Teredo: client 127.0.0.1, obfuscated
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),  # RFC 4380's example
    ("::808:808", "8.8.8.8"),  # IPv4-compatible is deprecated and never routed, even to a public IPv4
    ("::ffff:0:808:808", "8.8.8.8"),  # so is IPv4-translated
    # IPv6 that carries no IPv4 but is not global
    ("::", ""),
    ("::1", ""),
    ("fd00:ec2::254", ""),  # EC2 instance metadata over IPv6
    ("fe80::a9fe:a9fe", ""),
    ("fec0::1", ""),  # site-local (deprecated): Python 3.11 calls it global
    ("3fff::1", ""),  # documentation (RFC 9637): Python 3.11 calls it global
    ("5f00::1", ""),  # SRv6 SIDs (RFC 9602)
    ("2001:db8::1", ""),
    ("100::1", ""),
    ("ff02::1", ""),
    ("::1:0:0:0", ""),  # reserved ::/8
]
# shorthand IPv4 forms the C library reads as addresses (never looked up in DNS)
SHORTHAND = [("2130706433", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"),
             ("127.1", "127.0.0.1"), ("0xa9fea9fe", "169.254.169.254"), ("10.1", "10.0.0.1")]  # fmt: skip
PUBLIC = [
    ("::ffff:808:808", "8.8.8.8"),  # IPv4-mapped public: connects to 8.8.8.8
    ("64:ff9b::808:808", "64:ff9b::808:808"),  # NAT64 of a public address (IANA: globally reachable)
    ("2002:808:808::1", "2002:808:808::1"),  # 6to4 of a public address
    ("2606:4700:4700::1111", "2606:4700:4700::1111"),
]


def _url(address: str) -> str:
    return f"https://[{address}]/hook" if ":" in address else f"https://{address}/hook"


def _no_lookup(host: str, port: int) -> list[str]:
    raise AssertionError("an address written in the URL is never looked up")


@pytest.mark.parametrize(("address", "ipv4"), NOT_PUBLIC + SHORTHAND)
def test_at_submit_every_form_of_a_non_public_address_is_refused(address: str, ipv4: str) -> None:
    url = _url(address)
    problem = webhooks.check_url_syntax(url)
    assert "not a public address" in problem
    if ipv4 and (":" in address or address != ipv4):
        assert ipv4 in problem  # the message names the IPv4 address it stands for
    with pytest.raises(ValidationError) as refused:
        webhooks.validate_webhook_url(url, resolve=_no_lookup)
    assert refused.value.details == [{"field": "webhookUrl", "message": problem}]


@pytest.mark.parametrize(("address", "connect_to"), PUBLIC + [("134744072", "8.8.8.8")])
def test_public_addresses_in_those_forms_are_accepted(address: str, connect_to: str) -> None:
    assert webhooks.check_url_syntax(_url(address)) == ""
    assert check_destination(_url(address), resolve=_no_lookup).address == connect_to


@pytest.mark.parametrize(("address", "ipv4"), NOT_PUBLIC)
def test_at_delivery_a_name_answering_any_such_form_is_refused(address: str, ipv4: str) -> None:
    # a name that was public when the job was submitted answers a non-public form now (DNS rebinding)
    answers = {"submit": ["93.184.215.14"], "deliver": ["93.184.215.14", address]}
    phase = "submit"
    webhooks.validate_webhook_url("https://hooks.example.com/b", resolve=lambda host, port: answers[phase])
    phase = "deliver"
    store = FakeStore("https://hooks.example.com/b")
    posted: list[Destination] = []
    outcome = WebhookSender(store, resolve=lambda host, port: answers[phase], poster=_recording(posted)).deliver(
        "job-1"
    )
    assert outcome["status"] == "REFUSED" and posted == []
    assert "resolves to" in outcome["lastError"] and address in outcome["lastError"]
    assert store.recorded[-1]["status"] == "REFUSED"


def test_at_delivery_the_connection_goes_to_the_address_that_was_checked() -> None:
    # each attempt looks the name up once, checks every answer and connects to a checked one
    lookups: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["93.184.215.14"] if len(lookups) == 1 else ["93.184.215.15"]

    posted: list[Destination] = []
    store = FakeStore("https://hooks.example.com/b")
    sender = WebhookSender(store, resolve=resolve, poster=_recording(posted, [500, 200]))
    with pytest.raises(webhooks.WebhookRetry):  # the caller retries: a second invocation
        sender.deliver("job-1")
    sender.deliver("job-1")
    assert [d.address for d in posted] == ["93.184.215.14", "93.184.215.15"] and len(lookups) == 2
    assert {(d.host, d.host_header) for d in posted} == {("hooks.example.com", "hooks.example.com")}


def test_post_connects_to_the_checked_address_and_sends_the_name_as_host() -> None:
    # a name that resolves nowhere near 127.0.0.1: the request still arrives there, named
    from harness import Receiver

    receiver = Receiver()
    try:
        port = int(receiver.url.split(":")[2].split("/")[0])
        destination = Destination("http", "hooks.example.com", port, "/hooks/backdrop", "127.0.0.1")
        status, _ = webhooks.post(destination, b"{}", {"Content-Type": "application/json"}, 5)
    finally:
        receiver.close()
    assert status == 200
    assert receiver.requests[0]["headers"]["Host"] == f"hooks.example.com:{port}"


def test_https_post_connects_to_the_checked_address_with_the_name_for_tls() -> None:
    # a TCP listener on 127.0.0.1 reads the TLS ClientHello: it arrived at the checked address and
    # names the host (SNI), so the certificate is verified for the name, not the address
    listener = socket.create_server(("127.0.0.1", 0))
    hello: list[bytes] = []

    def accept() -> None:
        conn, _ = listener.accept()
        with conn:
            hello.append(conn.recv(4096))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    destination = Destination("https", "hooks.example.com", listener.getsockname()[1], "/b", "127.0.0.1")
    try:
        with pytest.raises(Exception):  # noqa: B017 - the listener closes without a handshake
            webhooks.post(destination, b"{}", {}, 5)
        thread.join(5)
    finally:
        listener.close()
    assert hello and hello[0][:1] == b"\x16"  # a TLS handshake record
    assert b"hooks.example.com" in hello[0]


def test_the_test_policy_opens_loopback_in_every_form_but_nothing_else() -> None:
    local = DeliveryPolicy(allow_loopback=True, allow_plain_http=True)
    assert check_destination("http://[::ffff:127.0.0.1]:8080/x", local).address == "127.0.0.1"
    for url in ("http://[::ffff:0:a00:1]/x", "http://[64:ff9b::a9fe:a9fe]/x", "http://[::a9fe:a9fe]/x"):
        with pytest.raises(UnsafeWebhookUrl):
            check_destination(url, local)


# ------------------------------------------------------------------------------ helpers


class FakeStore:
    """The three JobStore calls the sender makes, for one finished job."""

    def __init__(self, url: str) -> None:
        self.job = {"jobId": "job-1", "owner": "owner-1", "status": "COMPLETED", "webhook": {"url": url}}
        self.recorded: list[dict[str, Any]] = []

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self.job

    def webhook_secret(self, owner: str) -> dict[str, Any]:
        return {"secret": "whsec_test"}

    def record_webhook(self, job_id: str, record: dict[str, Any]) -> None:
        self.recorded.append(dict(record))
        self.job["webhook"] = dict(record)


def _recording(posted: list[Destination], statuses: list[int] | None = None) -> webhooks.Poster:
    answers = list(statuses or [200])

    def poster(destination: Destination, body: bytes, headers: Any, timeout_s: float) -> tuple[int, bytes]:
        posted.append(destination)
        return (answers.pop(0) if answers else 200), b""

    return poster
