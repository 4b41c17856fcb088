"""POST /jobs with refs that were never uploaded: refused naming them, without listing every
upload batch first (issue #26: 10,000 such refs took 88 s to refuse; bench/submit.py times it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from chalice.test import Client
from harness import upload

import app as backdrop_app
from chalicelib.core import contracts
from chalicelib.jobs import service as jobs

OWNER = "owner-m"


@pytest.fixture
def client(resources: dict[str, Any], rekognition: Any) -> Iterator[Client]:
    with Client(backdrop_app.app, stage_name="dev") as test_client:
        yield test_client


def _submit(client: Client, token: str, refs: list[str]) -> Any:
    body = {
        "prompt": "a marble floor",
        "images": [{"imageRef": ref, "name": f"IMG_{i:05d}.png", "labels": ["Person"]} for i, ref in enumerate(refs)],
    }
    return client.http.post("/jobs", headers={"Authorization": token}, body=json.dumps(body))


def _listings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The upload prefixes POST /jobs lists, in order."""
    prefixes: list[str] = []
    real = jobs.JobService._missing_uploads

    def counting(self: Any, owner: str, images: Any) -> Any:
        self.s3.meta.events.register(
            "provide-client-params.s3.ListObjectsV2",
            lambda params, **_: prefixes.append(params["Prefix"]),
            unique_id="test-missing-uploads-listings",
        )
        return real(self, owner, images)

    monkeypatch.setattr(jobs.JobService, "_missing_uploads", counting)
    return prefixes


def test_a_thousand_never_uploaded_refs_are_refused_naming_the_first_without_listing_every_batch(
    client, token_for, photo, monkeypatch
) -> None:
    listed = _listings(monkeypatch)
    good = upload(OWNER, "a.png", photo(), "png")
    never = [contracts.image_ref_of(contracts.new_opaque_id(), contracts.new_opaque_id(), "png") for _ in range(1000)]
    answer = _submit(client, token_for(OWNER), [good, *never])
    assert answer.status_code == 400 and answer.json_body["code"] == "UPLOAD_MISSING", answer.body[:300]
    details = answer.json_body["details"]
    # the first missing refs, in the request's order, each by its ref and name
    assert len(details) >= 100  # jobs.MISSING_UPLOADS_ENOUGH
    assert [d["imageRef"] for d in details] == never[: len(details)]
    assert [d["name"] for d in details] == [f"IMG_{i:05d}.png" for i in range(1, len(details) + 1)]
    checked = 1 + len(details)
    message = answer.json_body["message"]
    assert message.startswith(f"{len(details)} of the first {checked:,} of 1,001 images checked were never uploaded")
    assert "'IMG_00001.png'" in message
    assert len(listed) == checked < 1001  # one listing per batch, and it stopped
    assert boto3.client("dynamodb").scan(TableName="backdrop-test-jobs")["Count"] == 0


def test_a_few_missing_refs_among_uploaded_ones_are_all_named(client, token_for, photo) -> None:
    uploaded = [upload(OWNER, f"{i}.png", photo(), "png") for i in range(3)]
    never = [contracts.image_ref_of(contracts.new_opaque_id(), contracts.new_opaque_id(), "png") for _ in range(2)]
    answer = _submit(client, token_for(OWNER), [uploaded[0], never[0], uploaded[1], never[1], uploaded[2]])
    assert answer.status_code == 400, answer.body[:300]
    assert [d["imageRef"] for d in answer.json_body["details"]] == never
    assert (
        answer.json_body["message"]
        == "2 image(s) were never uploaded or have expired: 'IMG_00001.png', 'IMG_00003.png'"
    )
