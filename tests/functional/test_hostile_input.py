"""Hostile input through the API: whole-string checks (issue #26)."""

from __future__ import annotations

import json

import boto3
import pytest
from builders import BUCKET
from chalice.test import Client

from chalicelib.api import auth
from chalicelib.core import contracts

USER = "7d8ca528-4931-4254-9273-ea5ee853f271"


@pytest.fixture
def client(client: Client, monkeypatch: pytest.MonkeyPatch) -> Client:
    monkeypatch.setattr(auth, "SUB_RE", auth.COGNITO_SUB_RE)  # the deployed rule: Cognito's UUIDs only
    return client


def _h(token: str) -> dict[str, str]:
    return {"Authorization": token, "Content-Type": "application/json"}


@pytest.mark.parametrize("sub", [USER + "\n", "owner-1", USER.replace("-", "")])
def test_a_token_whose_sub_is_not_exactly_a_uuid_is_401(client, token_for, sub: str) -> None:
    answer = client.http.get("/jobs", headers=_h(token_for(sub)))
    assert answer.status_code == 401 and answer.json_body["code"] == "UNAUTHORIZED", answer.body
    assert client.http.get("/jobs", headers=_h(token_for(USER))).status_code == 200


def test_a_placement_aspect_with_a_trailing_newline_is_refused_and_nothing_is_written(client, token_for, photo) -> None:
    ref = contracts.image_ref_of(contracts.new_opaque_id(), contracts.new_opaque_id(), "png")
    boto3.client("s3").put_object(Bucket=BUCKET, Key=contracts.upload_key(USER, ref), Body=photo())
    body = {"background": {"source": "color", "color": "#fff"}, "images": [{"imageRef": ref}]}
    for aspect, status in (("1:1\n", 400), ("1:1", 202)):
        answer = client.http.post(
            "/jobs", headers=_h(token_for(USER)), body=json.dumps({**body, "placement": {"aspect": aspect}})
        )
        assert answer.status_code == status, answer.body
        if status == 400:
            assert {d["field"] for d in answer.json_body["details"]} == {"placement.aspect"}
            assert client.http.get("/jobs", headers=_h(token_for(USER))).json_body["jobs"] == []
