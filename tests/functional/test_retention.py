"""Retention is real: items carry the TTL the table deletes them by, and S3 expires what the
deployer chose to keep for N days (the API's "never uploaded or have expired" is then true)."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from builders import BUCKET, TABLE
from chalice.test import Client
from harness import write_job_images

from backend import templates
from chalicelib.core import config, contracts

DAY = 86_400


def test_job_and_label_items_carry_the_configured_expiry(
    client: Client, token_for: Any, photo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(config.RESULT_RETENTION_DAYS, "7")
    monkeypatch.setenv(config.UPLOAD_RETENTION_DAYS, "3")
    ref = contracts.image_ref_of(contracts.new_opaque_id(), contracts.new_opaque_id(), "png")
    boto3.client("s3").put_object(Bucket=BUCKET, Key=contracts.upload_key("user-1", ref), Body=photo())
    headers = {"Authorization": token_for("user-1"), "Content-Type": "application/json"}
    body = {"prompt": "a marble floor", "images": [{"imageRef": ref, "name": "a.png", "labels": ["Person"]}]}
    answer = client.http.post("/jobs", headers=headers, body=json.dumps(body))
    assert answer.status_code == 202, answer.body
    job_id = answer.json_body["jobId"]
    write_job_images(job_id)  # the starter writes the image item with the job's own expiry
    table = boto3.resource("dynamodb").Table(TABLE)
    now = time.time()
    items = table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": contracts.job_pk(job_id)})
    assert len(items["Items"]) == 2  # the job and its image
    for item in items["Items"]:
        assert abs(int(item[contracts.TTL_ATTRIBUTE]) - (now + 7 * DAY)) < 120
    labels = table.get_item(
        Key={"pk": contracts.labels_pk(contracts.upload_key("user-1", ref)), "sk": contracts.LABELS_SK}
    )
    assert abs(int(labels["Item"][contracts.TTL_ATTRIBUTE]) - (now + 3 * DAY)) < 120


def test_a_nonsense_retention_is_a_configuration_error_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.RESULT_RETENTION_DAYS, "forever")
    with pytest.raises(Exception, match="BACKDROP_RESULT_RETENTION_DAYS must be a whole number"):
        config.expires_at(config.RESULT_RETENTION_DAYS)


def test_the_table_deletes_by_the_attribute_items_carry() -> None:
    table = templates.load("resources")["Resources"]["JobsTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": contracts.TTL_ATTRIBUTE, "Enabled": True}


def test_uploads_results_and_reports_expire_by_the_settings() -> None:
    resources = templates.load("resources")
    rules = resources["Resources"]["Bucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    expiry = {rule["Prefix"]: rule["ExpirationInDays"] for rule in rules if "Prefix" in rule}
    assert expiry["uploads/"] == {"Ref": "UploadRetentionDays"}
    assert expiry["results/"] == expiry["reports/"] == {"Ref": "ResultRetentionDays"}
    assert expiry["jobs/"] == {"Ref": "ScratchExpirationDays"}
    defaults = {s.name: s.default for s in config.DEPLOYMENT_SETTINGS}
    parameters = resources["Parameters"]
    assert str(parameters["UploadRetentionDays"]["Default"]) == defaults[config.UPLOAD_RETENTION_DAYS]
    assert str(parameters["ResultRetentionDays"]["Default"]) == defaults[config.RESULT_RETENTION_DAYS]


def test_bucket_cors_allows_no_origin_unless_the_deployer_names_one() -> None:
    bucket = templates.load("resources")["Resources"]["Bucket"]["Properties"]
    condition, rules, otherwise = bucket["CorsConfiguration"]["Fn::If"]
    assert condition == "HasCorsOrigin" and otherwise == {"Ref": "AWS::NoValue"}
    assert rules["CorsRules"][0]["AllowedOrigins"] == [{"Ref": "CorsAllowedOrigin"}]
    assert "*" not in json.dumps(rules["CorsRules"][0]["AllowedOrigins"])
