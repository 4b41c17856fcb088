"""One batch all the way through, executed on moto's Step Functions interpreter.

The real API (through Chalice's test client), the real stream handler, the real state machine
file and the real workflow Lambdas run; only Bedrock is answered by the stand-in, and Lambda
tasks are run in-process by backend.local.sfn_hooks. Per family, the batch has a good image, a
truncated image, an image the model's content filter blocks, and an image throttled twice before
it succeeds.
"""

from __future__ import annotations

import csv
import io
import json

import boto3
import pytest
from builders import BUCKET
from harness import deliver_stream, upload, wait_for
from PIL import Image

from chalicelib.core import contracts

pytestmark = pytest.mark.slow


def _registry_with_new_default(tmp_path) -> str:
    """A deployment's own models.json: a new model (EU inference profiles) as the default."""
    from chalicelib.models.registry import REGISTRY_PATH

    data = json.loads(REGISTRY_PATH.read_text())
    new = json.loads(json.dumps(next(m for m in data["models"] if m["key"] == "stability-inpaint")))
    new["key"] = "stability-inpaint-eu"
    new["modelIds"] = {call: "eu." + base for call, base in new["baseModelIds"].items()}
    data["models"].append(new)
    data["default"] = new["key"]
    path = tmp_path / "models.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize(
    ("model", "extended_access"),
    [("stability-inpaint", ""), ("titan-image-v2", "titan-image-v2"), (None, "")],
    ids=["stability", "outpainting", "registry-only-default"],
)
def test_batch_runs_end_to_end(stack, token_for, photo, monkeypatch, tmp_path, model, extended_access) -> None:
    from chalice.test import Client

    import app as backdrop_app

    monkeypatch.setenv("BACKDROP_EXTENDED_ACCESS_MODELS", extended_access)
    if model is None:  # switching the default touches only the registry file
        monkeypatch.setenv("BACKDROP_MODEL_REGISTRY", _registry_with_new_default(tmp_path))
    owner = "user-a"
    good = photo(480, 320, "PNG")  # landscape 3:2
    rotated = photo(300, 500, "JPEG", exif_orientation=6)
    # the header is whole (label detection reads it) but the pixel data stops half way
    full = photo(400, 400, "JPEG")
    truncated = full[: len(full) // 2]
    refs = {
        "good.png": upload(owner, "good.png", good, "png"),
        "throttled.jpg": upload(owner, "throttled.jpg", rotated, "jpg"),
        "truncated.jpg": upload(owner, "truncated.jpg", truncated, "jpg"),
        "filtered.png": upload(owner, "filtered.png", good, "png"),
    }
    prompts = {"throttled.jpg": "a sunny beach [throttle:2]", "filtered.png": "a sunny beach [filter:prompt]"}
    body = {
        **({"model": model} if model else {}),
        "prompt": "a sunny beach at golden hour",
        "mode": "PRECISE",
        "seed": 42,
        "images": [
            {
                "imageRef": ref,
                "name": name,
                "labels": ["Product"],
                **({"prompt": prompts[name]} if name in prompts else {}),
            }
            for name, ref in refs.items()
        ],
    }
    headers = {"Authorization": token_for(owner), "Content-Type": "application/json"}
    with Client(backdrop_app.app, stage_name="dev") as client:
        submitted = client.http.post("/jobs", headers=headers, body=json.dumps(body))
        assert submitted.status_code == 202, submitted.body
        job_id = submitted.json_body["jobId"]

        deliver_stream(stack, client)
        deliver_stream(stack, client)  # a repeated delivery must not start a second run
        sfn = boto3.client("stepfunctions")
        executions = sfn.list_executions(stateMachineArn=stack["state_machine_arn"])["executions"]
        assert [e["name"] for e in executions] == [job_id]
        finished = wait_for(sfn, executions[0]["executionArn"])
        assert finished["status"] == "SUCCEEDED", finished

        view = client.http.get(f"/jobs/{job_id}", headers=headers).json_body

    by_name = {image["name"]: image for image in view["images"]}
    assert view["status"] == "PARTIAL"
    assert {n: i["status"] for n, i in by_name.items()} == {
        "good.png": "SUCCEEDED",
        "throttled.jpg": "SUCCEEDED",
        "truncated.jpg": "FAILED",
        "filtered.png": "FAILED",
    }
    assert by_name["truncated.jpg"]["errorCode"] == "IMAGE_INVALID"
    assert by_name["filtered.png"]["errorCode"] == "CONTENT_FILTERED"
    assert "content filter" in by_name["filtered.png"]["cause"]

    s3 = boto3.client("s3")
    # stored 300x500 with EXIF orientation 6 (rotate 90): the user sees, and gets back, 500x300;
    # no outputFormat in the job: each result follows its original (JPEG in, JPEG out)
    expected = {"good.png": ((480, 320), "png"), "throttled.jpg": ((500, 300), "jpeg")}
    for name, (size, fmt) in expected.items():
        outputs = by_name[name]["outputs"]
        assert [o["key"] for o in outputs] == [contracts.result_key(owner, job_id, by_name[name]["imageId"], 1, fmt)]
        result = Image.open(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=outputs[0]["key"])["Body"].read()))
        assert result.format == fmt.upper()
        assert result.size == size
        # the result PNG keeps what the model output said made it, and so does the job's record
        # a PNG keeps it as a text chunk, a JPEG in its comment ("Source: ...")
        made_by = (
            result.info[contracts.PROVENANCE_TEXT_KEY]
            if fmt == "png"
            else result.info["comment"].decode().removeprefix(f"{contracts.PROVENANCE_TEXT_KEY}: ")
        )
        assert "stand-in (a plain synthetic backdrop, not generated art" in made_by
        assert outputs[0]["producedBy"] == made_by

    if model is None:
        assert view["model"] == "stability-inpaint-eu"
        assert {call[0] for call in stack["bedrock"].calls} == {
            "eu.stability.stable-image-remove-background-v1:0",
            "eu.stability.stable-image-inpaint-v1:0",
        }
    # the throttled image really was throttled twice and then answered
    throttled_calls = [c for c in stack["bedrock"].calls if "throttle:2" in json.dumps(c)]
    assert len(throttled_calls) >= 3

    report = json.loads(s3.get_object(Bucket=BUCKET, Key=contracts.report_key(owner, job_id, "json"))["Body"].read())
    assert report["status"] == "PARTIAL"
    assert report["counts"] == {"total": 4, "PENDING": 0, "RUNNING": 0, "SUCCEEDED": 2, "FAILED": 2, "CANCELLED": 0}
    assert len(report["producedBy"]) == 1 and "not generated art" in report["producedBy"][0]
    rows = list(
        csv.DictReader(
            io.StringIO(
                s3.get_object(Bucket=BUCKET, Key=contracts.report_key(owner, job_id, "csv"))["Body"].read().decode()
            )
        )
    )
    assert sorted((r["name"], r["status"], r["errorCode"]) for r in rows) == [
        ("filtered.png", "FAILED", "CONTENT_FILTERED"),
        ("good.png", "SUCCEEDED", ""),
        ("throttled.jpg", "SUCCEEDED", ""),
        ("truncated.jpg", "FAILED", "IMAGE_INVALID"),
    ]
    assert {r["producedBy"] for r in rows if r["status"] == "SUCCEEDED"} == set(report["producedBy"])

    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=stack["queue_url"], MaxNumberOfMessages=10).get("Messages", [])
    assert len(messages) == 1
    email = json.loads(messages[0]["Body"])
    assert "2 of 4" in email["Subject"]
    assert "filtered.png: CONTENT_FILTERED" in email["Message"]
    assert "truncated.jpg: IMAGE_INVALID" in email["Message"]
    assert f"Produced by: {report['producedBy'][0]}" in email["Message"]
