"""The HTTP API through Chalice's test client, on moto."""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from builders import BUCKET, SCENE_REGION, TABLE
from chalice.test import Client
from harness import write_job_images

import app as backdrop_app
from chalicelib.core import contracts
from chalicelib.core.contracts import ImageStatus, JobStatus
from chalicelib.models.base import Lifecycle, LifecycleStatus
from chalicelib.store import clients as aws
from chalicelib.store.jobs import JobStore


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": token, "Content-Type": "application/json"}


def _upload(owner: str, data: bytes, ext: str = "png") -> str:
    ref = contracts.image_ref_of(contracts.new_opaque_id(), contracts.new_opaque_id(), ext)
    boto3.client("s3").put_object(Bucket=BUCKET, Key=contracts.upload_key(owner, ref), Body=data)
    return ref


def _post(client: Client, path: str, token: str, body: Any) -> Any:
    return client.http.post(path, headers=_headers(token), body=json.dumps(body))


def _submit(client: Client, token: str, refs: list[str], **extra: Any) -> Any:
    body = {
        "prompt": "a marble studio floor",
        "images": [{"imageRef": r, "name": f"img{i}.png", "labels": ["Person"]} for i, r in enumerate(refs)],
    }
    body.update(extra)
    return _post(client, "/jobs", token, body)


# ---------------------------------------------------------------------------------- auth


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "20260101T000000Z-0123456789ab", path)


PUBLIC = {"/health", "/openapi.json"}
PROTECTED = [
    (path, method)
    for path, methods in backdrop_app.app.routes.items()
    for method, entry in methods.items()
    if path not in PUBLIC
]


def test_every_route_but_health_and_the_api_document_has_the_cognito_authorizer() -> None:
    for path, methods in backdrop_app.app.routes.items():
        for method, entry in methods.items():
            if path in PUBLIC:
                assert entry.authorizer is None
            else:
                assert entry.authorizer is backdrop_app.authorizer, f"{method} {path} has no authorizer"


@pytest.mark.parametrize(("path", "method"), PROTECTED)
def test_requests_without_verified_claims_are_refused(client: Client, token_for, path: str, method: str) -> None:
    response = client.http.request(method, _concrete(path), headers={"Content-Type": "application/json"}, body=b"{}")
    assert response.status_code == 401, (method, path, response.body)
    assert response.json_body["code"] == "UNAUTHORIZED"


def test_token_with_unusable_sub_or_access_token_use_is_refused(client: Client, token_for) -> None:
    assert client.http.get("/jobs", headers=_headers(token_for("../evil"))).status_code == 401
    assert client.http.get("/jobs", headers=_headers(token_for("u1", token_use="access"))).status_code == 401
    assert client.http.get("/jobs", headers=_headers(token_for("u1"))).status_code == 200


def test_health_needs_no_token(client: Client) -> None:
    assert client.http.get("/health").json_body == {"status": "ok", "appUrl": None}  # no web app deployed


# ---------------------------------------------------------------------------------- models


def test_models_lists_limits_and_marks_end_of_life_models(client: Client, token_for) -> None:
    body = client.http.get("/models", headers=_headers(token_for("u1"))).json_body
    models = {m["key"]: m for m in body["models"]}
    assert body["default"] == "stability-inpaint"
    assert models["stability-inpaint"]["selectable"] is True
    assert models["titan-image-v2"]["selectable"] is False
    assert models["titan-image-v2"]["lifecycle"]["eolDate"] == "2026-06-30"
    assert models["titan-image-v2"]["limits"]["promptMax"] == 512


# ---------------------------------------------------------------------------------- uploads


def test_uploads_presign_posts_under_the_owners_prefix_and_s3_enforces_them(client: Client, token_for, photo) -> None:
    files = [
        {"name": "../bus.png", "contentType": "image/png", "size": 1000},
        {"name": "bus.jpg", "contentType": "image/jpeg", "size": 2000},
    ]
    response = _post(client, "/uploads", token_for("owner-1"), {"files": files})
    assert response.status_code == 201, response.body
    uploads = response.json_body["uploads"]
    refs = [u["imageRef"] for u in uploads]
    assert len(set(refs)) == 2 and all(contracts.IMAGE_REF_RE.match(r) for r in refs)
    assert refs[0].endswith(".png") and refs[1].endswith(".jpg")
    for upload in uploads:
        assert upload["fields"]["key"] == contracts.upload_key("owner-1", upload["imageRef"])
        assert ".." not in upload["fields"]["key"]
    data = photo(200, 200, "PNG")
    first = uploads[0]
    posted = requests.post(first["url"], data=first["fields"], files={"file": ("x.png", data, "image/png")}, timeout=10)
    assert posted.status_code in (200, 204), posted.text
    stored = boto3.client("s3").get_object(Bucket=BUCKET, Key=first["fields"]["key"])
    assert stored["Body"].read() == data
    assert stored["Metadata"]["original-name"] == "..%2Fbus.png"


def test_uploads_accept_the_good_files_and_give_each_bad_one_its_reasons(client: Client, token_for) -> None:
    files = [
        {"name": "a.gif", "contentType": "image/gif", "size": 10},
        {"name": "b.png", "contentType": "image/png", "size": contracts.MAX_UPLOAD_BYTES + 1},
        {"name": "", "contentType": "image/png", "size": 10},
        {"name": "ok.png", "contentType": "image/png", "size": 10},
        {"name": "worse.txt", "contentType": "text/plain", "size": 0},
        {"name": "also-ok.jpg", "contentType": "image/jpeg", "size": 2000},
    ]
    response = _post(client, "/uploads", token_for("u1"), {"files": files})
    assert response.status_code == 201, response.body
    body = response.json_body
    assert [(u["index"], u["name"]) for u in body["uploads"]] == [(3, "ok.png"), (5, "also-ok.jpg")]
    rejected = {r["index"]: r for r in body["rejected"]}
    assert sorted(rejected) == [0, 1, 2, 4]
    assert "image/gif" in rejected[0]["message"] and rejected[0]["name"] == "a.gif"
    assert "15,728,640" in rejected[1]["message"]
    assert rejected[2]["name"] == "file 2" and "name must be" in rejected[2]["message"]
    assert len(rejected[4]["reasons"]) == 2  # both problems of one file, at once
    # nothing good at all: an error that still lists every file with its reasons
    only_bad = _post(client, "/uploads", token_for("u1"), {"files": [files[0], files[4]]})
    assert only_bad.status_code == 400
    assert only_bad.json_body["code"] == "VALIDATION_FAILED"
    assert [d["index"] for d in only_bad.json_body["details"]] == [0, 1]
    too_many = [
        {"name": f"{i}.png", "contentType": "image/png", "size": 10}
        for i in range(contracts.MAX_FILES_PER_UPLOAD_REQUEST + 1)
    ]
    assert _post(client, "/uploads", token_for("u1"), {"files": too_many}).status_code == 400
    assert (
        client.http.post("/uploads", headers=_headers(token_for("u1")), body=b"{not json").json_body["code"]
        == "BAD_REQUEST"
    )


# ---------------------------------------------------------------------------------- labels


def test_labels_come_from_rekognition_once_then_from_the_cache(client: Client, token_for, photo, rekognition) -> None:
    ref = _upload("owner-1", photo())
    first = _post(client, "/labels", token_for("owner-1"), {"imageRefs": [ref]})
    second = _post(client, "/labels", token_for("owner-1"), {"imageRefs": [ref]})
    assert first.status_code == 200, first.body
    assert first.json_body == second.json_body
    person = first.json_body["labels"][ref][0]
    assert (person["name"], person["confidence"]) == ("Person", round(98.25, 1))
    assert person["instances"][0]["box"] == {"left": 0.1, "top": 0.2, "width": 0.3, "height": 0.6}
    assert rekognition.calls == [contracts.upload_key("owner-1", ref)]


def test_labels_of_another_users_image_are_not_found(client: Client, token_for, photo, rekognition) -> None:
    ref = _upload("owner-1", photo())
    response = _post(client, "/labels", token_for("owner-2"), {"imageRefs": [ref]})
    assert response.status_code == 404
    assert rekognition.calls == []
    assert _post(client, "/labels", token_for("owner-2"), {"imageRefs": ["../../owner-1/x.png"]}).status_code == 400


def test_s3_event_handler_detects_labels_when_an_upload_lands(client: Client, photo, rekognition, event) -> None:
    ref = _upload("owner-1", photo())
    key = contracts.upload_key("owner-1", ref)
    landed = event("s3-object-created")
    landed["detail"]["object"]["key"] = key
    client.lambda_.invoke("detect_labels", landed)
    elsewhere = event("s3-object-created")
    elsewhere["detail"]["object"]["key"] = "reports/x/y.json"
    client.lambda_.invoke("detect_labels", elsewhere)
    assert rekognition.calls == [key]


# ---------------------------------------------------------------------------------- jobs


def test_submit_writes_the_job_first_then_the_starter_writes_its_images_with_boxes(
    client: Client, token_for, photo, store
) -> None:
    refs = [_upload("owner-1", photo()), _upload("owner-1", photo())]
    response = _submit(client, token_for("owner-1"), refs)
    assert response.status_code == 202, response.body
    job_id = response.json_body["jobId"]
    assert contracts.is_job_id(job_id)
    job = store.get_job(job_id)
    assert job["owner"] == "owner-1" and job["status"] == "SUBMITTED" and job["imageCount"] == 2
    assert 1 <= job["settings"]["seed"] <= 4_294_967_294
    # accepted first: the job item alone, its image records in its scratch space for the starter
    assert store.images(job_id) == []
    assert job[contracts.JOB_IMAGES_PENDING_ATTRIBUTE] == contracts.images_file_key(job_id)
    view = client.http.get(f"/jobs/{job_id}", headers=_headers(token_for("owner-1"))).json_body
    assert view["counts"]["PENDING"] == 2 and view["images"] == [] and view["imagesPreparing"] is True
    assert "2 images are being prepared" in view["message"]
    write_job_images(job_id)  # the job's stream record reaches the starter
    images = store.images(job_id)
    assert {i["status"] for i in images} == {"PENDING"} and len(images) == 2
    assert [float(v) for v in images[0]["boxes"][0]] == [0.1, 0.2, 0.3, 0.6]
    assert contracts.JOB_IMAGES_PENDING_ATTRIBUTE not in store.get_job(job_id)
    view = client.http.get(f"/jobs/{job_id}", headers=_headers(token_for("owner-1"))).json_body
    assert view["counts"]["PENDING"] == 2 and len(view["images"]) == 2 and "imagesPreparing" not in view


def test_submit_refuses_missing_uploads_and_writes_nothing(client: Client, token_for, photo) -> None:
    good = _upload("owner-1", photo())
    never = contracts.image_ref_of(contracts.new_opaque_id(), contracts.new_opaque_id(), "png")
    response = _submit(client, token_for("owner-1"), [good, never])
    assert response.status_code == 400
    assert response.json_body["code"] == "UPLOAD_MISSING"
    assert boto3.client("dynamodb").scan(TableName=TABLE)["Count"] == 0


def test_submit_collects_every_validation_problem(client: Client, token_for, photo) -> None:
    ref = _upload("owner-1", photo())
    body = {
        "prompt": "x" * 10_001,
        "variants": 3,
        "quality": "premium",
        "colour": "red",
        "images": [
            {"imageRef": ref, "labels": ["a"] * 3 + ["b" * 200]},
            {"imageRef": ref, "labels": []},
            {"imageRef": "not-a-ref"},
        ],
    }
    response = _post(client, "/jobs", token_for("owner-1"), body)
    assert response.status_code == 400
    fields = {d["field"] for d in response.json_body["details"]}
    assert {"colour", "images[0].labels", "images[1].imageRef", "images[2].imageRef"} <= fields
    # the model's own limits come in a second round only when the shape is right
    response = _submit(client, token_for("owner-1"), [ref], prompt="x" * 10_001, variants=5, quality="premium")
    fields = {d["field"] for d in response.json_body["details"]}
    assert fields == {"prompt", "variants", "quality"}
    assert "10,001" in response.json_body["message"]


def test_compositing_and_quality_settings_are_stored_complete(client: Client, token_for, photo, store) -> None:
    ref = _upload("owner-1", photo())
    response = _submit(
        client,
        token_for("owner-1"),
        [ref],
        blend=0.7,
        shadow="soft",
        shadowAngle=45,
        qualityThresholds={"haloFail": 8, "subjectPsnrWarnDb": 45},
    )
    assert response.status_code == 202, response.body
    settings = store.get_job(response.json_body["jobId"])["settings"]
    assert (settings["blend"], settings["shadow"], settings["shadowAngle"], settings["shadowStrength"]) == (
        0.7,
        "soft",
        45,
        0.5,
    )
    # every threshold is stored, so the report shows what each image was scored against
    assert settings["qualityThresholds"]["haloFail"] == 8 and settings["qualityThresholds"]["haloWarn"] == 2
    plain = store.get_job(_submit(client, token_for("owner-1"), [ref]).json_body["jobId"])["settings"]
    assert (plain["blend"], plain["shadow"]) == (1, "none")


def test_bad_compositing_and_quality_settings_are_400s_naming_each_field(client: Client, token_for, photo) -> None:
    ref = _upload("owner-1", photo())
    response = _submit(
        client,
        token_for("owner-1"),
        [ref],
        blend=1.5,
        shadow="sideways",
        shadowStrength=2,
        qualityThresholds={"haloWarn": 9, "haloFail": 3},
    )
    assert response.status_code == 400
    fields = {d["field"] for d in response.json_body["details"]}
    assert fields == {"blend", "shadow", "shadowStrength", "qualityThresholds"}
    default_mode = _submit(client, token_for("owner-1"), [ref], blend=0.5, mode="DEFAULT")
    assert "PRECISE" in default_mode.json_body["message"]
    assert _submit(client, token_for("owner-1"), [ref], qualityThresholds=[1]).status_code == 400


def test_re_rolls_are_validated_stored_and_priced_as_a_maximum(client: Client, token_for, photo, store) -> None:
    from chalicelib.core import contracts

    ref = _upload("owner-1", photo())
    default = _submit(client, token_for("owner-1"), [ref, _upload("owner-1", photo())])
    assert default.status_code == 202, default.body
    settings = store.get_job(default.json_body["jobId"])["settings"]
    assert (settings["reRolls"], settings["reRollOn"]) == (contracts.DEFAULT_RE_ROLLS, "FAIL")
    estimate = default.json_body["estimate"]
    # two images of the default model: its price, the checks, and one re-roll each at most
    check = contracts.REKOGNITION_USD_PER_IMAGE
    assert estimate["usd"] == pytest.approx(2 * (0.08 + 3 * check))
    assert estimate["maxUsd"] == pytest.approx(estimate["usd"] + 2 * (0.04 + 2 * check))
    assert "if every image is re-rolled" in estimate["sentence"]
    off = _submit(client, token_for("owner-1"), [ref], reRolls=0, reRollOn="WARN")
    assert off.status_code == 202
    assert off.json_body["estimate"]["maxUsd"] == off.json_body["estimate"]["usd"]
    assert store.get_job(off.json_body["jobId"])["settings"]["reRollOn"] == "WARN"
    for bad in ({"reRolls": contracts.MAX_RE_ROLLS + 1}, {"reRolls": -1}, {"reRolls": True}, {"reRolls": 1.5}):
        response = _submit(client, token_for("owner-1"), [ref], **bad)
        assert response.status_code == 400, bad
        assert response.json_body["details"][0]["field"] == "reRolls"
        assert f"0 (no re-rolls) to {contracts.MAX_RE_ROLLS}" in response.json_body["details"][0]["message"]
    bad_on = _submit(client, token_for("owner-1"), [ref], reRollOn="PASS")
    assert bad_on.status_code == 400 and bad_on.json_body["details"][0]["field"] == "reRollOn"


def test_a_model_without_a_cut_out_cannot_take_a_shadow(client: Client, token_for, photo, monkeypatch) -> None:
    monkeypatch.setenv("BACKDROP_EXTENDED_ACCESS_MODELS", "titan-image-v2")
    ref = _upload("owner-1", photo())
    response = _submit(client, token_for("owner-1"), [ref], model="titan-image-v2", shadow="contact")
    assert response.status_code == 400
    assert response.json_body["details"][0]["field"] == "shadow"
    assert "does not cut the subject out" in response.json_body["message"]


def test_end_of_life_model_is_refused_naming_the_usable_ones(client: Client, token_for, photo) -> None:
    ref = _upload("owner-1", photo())
    response = _submit(client, token_for("owner-1"), [ref], model="titan-image-v2")
    assert response.status_code == 400
    assert response.json_body["code"] == "MODEL_UNAVAILABLE"
    assert "stability-inpaint" in response.json_body["message"]
    assert _submit(client, token_for("owner-1"), [ref], model="dall-e").json_body["code"] == "MODEL_UNAVAILABLE"


def test_outpainting_model_needs_a_kept_label(client: Client, token_for, photo, monkeypatch) -> None:
    monkeypatch.setenv("BACKDROP_EXTENDED_ACCESS_MODELS", "titan-image-v2")
    ref = _upload("owner-1", photo())
    body = {
        "model": "titan-image-v2",
        "prompt": "beach",
        "images": [{"imageRef": ref, "name": "bus.png", "labels": []}],
    }
    response = _post(client, "/jobs", token_for("owner-1"), body)
    assert response.status_code == 400
    assert "bus.png" in response.json_body["message"] and "keeps no label" in response.json_body["message"]


def test_another_users_job_is_not_found_anywhere(client: Client, token_for, photo) -> None:
    ref = _upload("owner-1", photo())
    job_id = _submit(client, token_for("owner-1"), [ref]).json_body["jobId"]
    intruder = _headers(token_for("owner-2"))
    for response in (
        client.http.get(f"/jobs/{job_id}", headers=intruder),
        client.http.get(f"/jobs/{job_id}/report?format=json", headers=intruder),
        client.http.post(f"/jobs/{job_id}/retry", headers=intruder, body=b"{}"),
    ):
        assert response.status_code == 404
        assert response.json_body["code"] == "NOT_FOUND"
    assert client.http.get("/jobs", headers=intruder).json_body["jobs"] == []
    # submitting the other user's ref resolves under the intruder's own prefix: nothing there
    assert _submit(client, token_for("owner-2"), [ref]).json_body["code"] == "UPLOAD_MISSING"


def test_job_list_is_newest_first_and_paginates(client: Client, token_for, photo) -> None:
    token = token_for("owner-1")
    ids = [_submit(client, token, [_upload("owner-1", photo())]).json_body["jobId"] for _ in range(3)]
    page1 = client.http.get("/jobs?limit=2", headers=_headers(token)).json_body
    page2 = client.http.get(f"/jobs?limit=2&cursor={page1['nextCursor']}", headers=_headers(token)).json_body
    listed = [j["jobId"] for j in page1["jobs"] + page2["jobs"]]
    assert sorted(listed) == sorted(ids) and len(listed) == 3
    assert page2["nextCursor"] is None
    assert client.http.get("/jobs?cursor=garbage", headers=_headers(token)).status_code == 400


def _finish(store: JobStore, job_id: str, statuses: dict[int, str]) -> None:
    """Images end as the workflow would end them (index in name order), then the job."""
    images = sorted(store.images(job_id), key=lambda i: i["name"])
    for index, status in statuses.items():
        assert store.set_image_status(job_id, images[index]["imageId"], ImageStatus(status), error_code="MODEL_ERROR")
    job = store.get_job(job_id)
    store.finish_job(job_id, JobStatus.PARTIAL, job["counts"], {}, contracts.utc_now_iso())


def test_report_is_not_ready_until_written_then_presigned(client: Client, token_for, photo) -> None:
    token = token_for("owner-1")
    job_id = _submit(client, token, [_upload("owner-1", photo())]).json_body["jobId"]
    early = client.http.get(f"/jobs/{job_id}/report?format=csv", headers=_headers(token))
    assert early.status_code == 409 and early.json_body["code"] == "REPORT_NOT_READY"
    assert job_id in early.json_body["message"]
    missing = client.http.get("/jobs/20260101T000000Z-0123456789ab/report?format=csv", headers=_headers(token))
    assert missing.status_code == 404 and missing.json_body["code"] == "NOT_FOUND"
    boto3.client("s3").put_object(Bucket=BUCKET, Key=contracts.report_key("owner-1", job_id, "csv"), Body=b"a,b\n")
    body = client.http.get(f"/jobs/{job_id}/report?format=csv", headers=_headers(token)).json_body
    assert f"reports/owner-1/{job_id}/report.csv" in body["url"]
    assert client.http.get(f"/jobs/{job_id}/report?format=xml", headers=_headers(token)).status_code == 400


def test_retry_makes_a_new_job_of_the_failed_images_only(client: Client, token_for, photo, store) -> None:
    token = token_for("owner-1")
    refs = [_upload("owner-1", photo()) for _ in range(3)]
    submitted = _submit(client, token, refs, seed=7).json_body
    job_id = submitted["jobId"]
    assert client.http.post(f"/jobs/{job_id}/retry", headers=_headers(token), body=b"{}").status_code == 409
    write_job_images(job_id)
    _finish(store, job_id, {0: "SUCCEEDED", 1: "FAILED", 2: "FAILED"})
    retried = client.http.post(f"/jobs/{job_id}/retry", headers=_headers(token), body=b"{}")
    assert retried.status_code == 202, retried.body
    assert retried.json_body["retryOf"] == job_id and retried.json_body["imageCount"] == 2
    write_job_images(retried.json_body["jobId"])  # the retry goes through the same accept-first submit
    new_view = client.http.get(f"/jobs/{retried.json_body['jobId']}", headers=_headers(token)).json_body
    assert sorted(i["name"] for i in new_view["images"]) == ["img1.png", "img2.png"]
    assert new_view["settings"]["seed"] == 7
    # one retry per failed set, and each job names the other
    assert new_view["retryOf"] == job_id
    old_view = client.http.get(f"/jobs/{job_id}?limit=0", headers=_headers(token)).json_body
    assert old_view["retriedAs"] == retried.json_body["jobId"]
    again = client.http.post(f"/jobs/{job_id}/retry", headers=_headers(token), body=b"{}")
    assert again.status_code == 409 and again.json_body["details"] == [{"jobId": retried.json_body["jobId"]}]
    assert retried.json_body["jobId"] in again.json_body["message"]


@pytest.mark.parametrize(
    ("budget", "says"),
    [
        ("25", "amount in US dollars"),
        (True, "amount in US dollars"),
        (-1, "more than 0"),
        (0, "more than 0"),
        (2_000_000, "at most 1,000,000"),
        (0.01, "does not pay for one photo"),
    ],
)
def test_a_budget_that_cannot_work_is_refused_naming_it(client: Client, token_for, photo, budget, says) -> None:
    response = _submit(client, token_for("owner-1"), [_upload("owner-1", photo())], budgetUsd=budget)
    assert response.status_code == 400 and response.json_body["code"] == "VALIDATION_FAILED"
    assert response.json_body["details"][0]["field"] == "budgetUsd" and says in response.json_body["message"]


def test_a_budget_is_kept_as_the_model_calls_it_pays_for_and_the_cost_follows_what_was_done(
    client: Client, token_for, photo, store
) -> None:
    from chalicelib.catalogue import costs
    from chalicelib.models import registry

    token = token_for("owner-1")
    spec = registry.get_model("stability-inpaint")  # two calls per photo
    photo_usd = spec.price_per_image_usd + 3 * contracts.REKOGNITION_USD_PER_IMAGE  # its calls and checks
    # a reserved call is counted at the most one call and its checks can cost, a little above half a photo
    call_usd = costs.budget_call_usd(spec)
    assert photo_usd / 2 < call_usd < photo_usd / 2 * 1.05
    budget = round(4 * call_usd, 4)
    submitted = _submit(client, token, [_upload("owner-1", photo()) for _ in range(3)], budgetUsd=budget)
    job_id = submitted.json_body["jobId"]
    job = store.get_job(job_id)
    assert job["settings"]["budgetUsd"] == budget and job["settings"]["maxModelCalls"] == 4
    write_job_images(job_id)
    first, second, _ = (i["imageId"] for i in sorted(store.images(job_id), key=lambda i: i["name"]))
    store.set_image_status(job_id, first, ImageStatus.SUCCEEDED, outputs=[], model_calls=2, cost_usd=photo_usd)
    # a Lambda retry of the same finish: the image has finished, nothing is added twice
    store.set_image_status(job_id, first, ImageStatus.SUCCEEDED, outputs=[], model_calls=2, cost_usd=photo_usd)
    cost = client.http.get(f"/jobs/{job_id}?limit=0", headers=_headers(token)).json_body["cost"]
    assert cost["modelCalls"] == 2 and cost["actualUsd"] == pytest.approx(photo_usd)
    # one figure for the whole job: what POST /jobs answered, Rekognition checks included
    assert cost["estimateUsd"] == pytest.approx(submitted.json_body["estimate"]["usd"]) == pytest.approx(3 * photo_usd)
    assert cost["budgetUsd"] == budget
    store.set_image_status(job_id, second, ImageStatus.SUCCEEDED, outputs=[], model_calls=2, cost_usd=photo_usd)
    listed = client.http.get("/jobs", headers=_headers(token)).json_body["jobs"]
    (summary,) = [j for j in listed if j["jobId"] == job_id]
    assert summary["cost"]["actualUsd"] == pytest.approx(2 * photo_usd) and summary["cost"]["modelCalls"] == 4


@pytest.mark.region(SCENE_REGION)
def test_a_scene_job_s_budget_pays_for_the_scene_first(client: Client, token_for, photo, store) -> None:
    from chalicelib.catalogue import costs
    from chalicelib.models import registry

    token = token_for("owner-1")
    call_usd = costs.budget_call_usd(registry.get_model("stability-inpaint"))
    scene_usd = registry.get_model(registry.default_scene_model_key()).price_per_image_usd
    images = [_upload("owner-1", photo()) for _ in range(3)]
    scene = {"source": "scene", "prompt": "a pale oak table"}
    refused = _submit(client, token, images, background=scene, budgetUsd=round(2 * call_usd, 4))
    assert refused.status_code == 400 and "the batch's scene" in refused.json_body["message"]
    budget = round(scene_usd + 2 * call_usd, 4)
    job_id = _submit(client, token, images, background=scene, budgetUsd=budget).json_body["jobId"]
    # the scene's call is reserved off the top: two photos' calls are left, not three
    assert store.get_job(job_id)["settings"]["maxModelCalls"] == 2


def test_job_list_and_view_show_live_counts_as_images_finish(client: Client, token_for, photo, store) -> None:
    token = token_for("owner-1")
    job_id = _submit(client, token, [_upload("owner-1", photo()) for _ in range(3)]).json_body["jobId"]
    write_job_images(job_id)
    first, second, _ = (i["imageId"] for i in sorted(store.images(job_id), key=lambda i: i["name"]))
    store.start_image(job_id, first)
    store.set_image_status(job_id, first, ImageStatus.SUCCEEDED, outputs=[{"key": "results/x.png", "variant": 1}])
    store.set_image_status(job_id, second, ImageStatus.FAILED, error_code="MODEL_ERROR", cause="boom")
    store.set_image_status(job_id, second, ImageStatus.FAILED, error_code="MODEL_ERROR", cause="again")  # repeat
    live = {"PENDING": 1, "RUNNING": 0, "SUCCEEDED": 1, "FAILED": 1, "CANCELLED": 0}
    listed = client.http.get("/jobs", headers=_headers(token)).json_body["jobs"]
    assert [j["counts"] for j in listed if j["jobId"] == job_id] == [live]
    view = client.http.get(f"/jobs/{job_id}", headers=_headers(token)).json_body
    assert view["counts"] == live and view["status"] == "SUBMITTED"


def test_a_kept_label_the_image_does_not_have_is_refused_naming_both(client: Client, token_for, photo) -> None:
    ref = _upload("owner-1", photo())
    body = {"prompt": "a beach", "images": [{"imageRef": ref, "name": "bus.png", "labels": ["person", "Giraffe"]}]}
    response = _post(client, "/jobs", token_for("owner-1"), body)
    assert response.status_code == 400, response.body
    assert response.json_body["code"] == "VALIDATION_FAILED"
    assert "bus.png" in response.json_body["message"] and "'Giraffe'" in response.json_body["message"]
    detail = response.json_body["details"][0]
    assert detail["field"] == "images[0].labels" and detail["labels"] == ["Giraffe"]
    assert boto3.client("dynamodb").scan(TableName=TABLE, Select="COUNT")["Count"] == 1  # labels only


def test_retry_checks_the_model_lifecycle_as_submit_does(client: Client, token_for, photo, store, monkeypatch) -> None:
    token = token_for("owner-1")
    job_id = _submit(client, token, [_upload("owner-1", photo())]).json_body["jobId"]
    write_job_images(job_id)
    _finish(store, job_id, {0: "FAILED"})

    class EndOfLife:
        def lifecycle(self, spec: Any) -> tuple[Lifecycle, str]:
            return Lifecycle(LifecycleStatus.EOL, "2026-01-01", "2026-06-01", source="test"), "bedrock"

    monkeypatch.setattr(backdrop_app, "_lifecycles", EndOfLife())
    retried = client.http.post(f"/jobs/{job_id}/retry", headers=_headers(token), body=b"{}")
    assert retried.status_code == 400 and retried.json_body["code"] == "MODEL_UNAVAILABLE"


def _failing_head(code: str, status: int) -> Any:
    def head_object(**_: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "HeadObject"
        )

    return head_object


@pytest.mark.parametrize(
    ("code", "status", "written", "answer", "error_code"),
    [
        ("403", 403, True, 500, "STORAGE_ERROR"),  # refused although it is there
        # S3's answer for a missing key to a role without ListBucket (docs/aws-notes.md#n63-s3-answers-403-for-a-missing-key-without-listbucket)
        ("403", 403, False, 409, "REPORT_NOT_READY"),
        ("SlowDown", 503, True, 503, "SERVICE_BUSY"),
        ("404", 404, False, 409, "REPORT_NOT_READY"),
    ],
)
def test_report_errors_are_told_apart_by_their_code(
    client: Client, token_for, photo, monkeypatch, code, status, written, answer, error_code
) -> None:
    token = token_for("owner-1")
    job_id = _submit(client, token, [_upload("owner-1", photo())]).json_body["jobId"]
    if written:
        boto3.client("s3").put_object(Bucket=BUCKET, Key=contracts.report_key("owner-1", job_id, "json"), Body=b"{}")
    s3 = aws.client("s3")
    monkeypatch.setattr(s3, "head_object", _failing_head(code, status))
    response = client.http.get(f"/jobs/{job_id}/report?format=json", headers=_headers(token))
    assert (response.status_code, response.json_body["code"]) == (answer, error_code)


@pytest.mark.parametrize(("code", "status", "answer"), [("AccessDenied", 403, 500), ("SlowDown", 503, 503)])
def test_labels_of_an_unreadable_upload_are_not_a_404_unless_it_is_missing(
    client: Client, token_for, monkeypatch, code, status, answer
) -> None:
    """The upload's existence is told by a LIST (a HEAD of a missing key is a 403 on AWS): a LIST
    that fails is the service's failure, never a 404."""

    def list_objects_v2(**_: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "ListObjectsV2"
        )

    monkeypatch.setattr(aws.client("s3"), "list_objects_v2", list_objects_v2)
    ref = contracts.image_ref_of(contracts.new_opaque_id(), contracts.new_opaque_id(), "png")
    response = _post(client, "/labels", token_for("owner-1"), {"imageRefs": [ref]})
    assert response.status_code == answer


# ---------------------------------------------------------------------------------- nothing written by a refused or failed submit


def _job_items() -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=TABLE)["Items"]
    return [i for i in items if i["pk"]["S"].startswith("JOB#")]


def _scratch_objects() -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=contracts.SCRATCH_PREFIX)
    return [o["Key"] for o in listed.get("Contents", [])]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"shadow": "contact", "shadowAngle": 1e308}, "shadowAngle"),
        ({"qualityThresholds": {"labelMinConfidence": 1e300}}, "qualityThresholds.labelMinConfidence"),
        ({"shadow": "contact", "shadowAngle": -1e200}, "shadowAngle"),
        ({"blend": 1e-200}, "blend"),
    ],
)
def test_a_number_dynamodb_cannot_store_is_a_400_naming_it_and_nothing_is_written(
    client: Client, token_for, photo, extra: dict[str, Any], field: str
) -> None:
    """Issue #26: these answered 500 after the job's image items were written (an orphan partition)."""
    refs = [_upload("owner-1", photo()), _upload("owner-1", photo())]
    response = _submit(client, token_for("owner-1"), refs, **extra)
    assert response.status_code == 400, response.body
    assert response.json_body["details"][0]["field"] == field and field in response.json_body["message"]
    assert _job_items() == [] and _scratch_objects() == []


def test_a_job_item_that_cannot_be_written_leaves_no_images_and_no_records(
    client: Client, token_for, photo, monkeypatch
) -> None:
    """The submit writes nothing to the table before the job item: a failure there (here DynamoDB
    refusing its PutItem) leaves no image items without a job, and the records file goes too."""
    refs = [_upload("owner-1", photo()), _upload("owner-1", photo())]

    def refuse_the_job_item(params: dict[str, Any], **_: Any) -> None:
        if params.get("Item", {}).get("sk") == contracts.JOB_SK:
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "down (test)"}}, "PutItem")

    events = aws.table(TABLE).meta.client.meta.events
    events.register("provide-client-params.dynamodb.PutItem", refuse_the_job_item)
    try:
        response = _submit(client, token_for("owner-1"), refs)
    finally:
        events.unregister("provide-client-params.dynamodb.PutItem", refuse_the_job_item)
    assert response.status_code >= 500, response.body
    assert _job_items() == [] and _scratch_objects() == []


# ---------------------------------------------------------------------------------- batch name and ETA


def test_a_batch_name_is_kept_and_shown_in_the_list_and_the_view(client: Client, token_for, photo, store) -> None:
    token = token_for("owner-1")
    answer = _submit(client, token, [_upload("owner-1", photo())], name="  Spring\n  shoes  ")
    assert answer.status_code == 202, answer.body
    job_id = answer.json_body["jobId"]
    assert answer.json_body["name"] == "Spring shoes"  # one line, as a list shows it
    listed = client.http.get("/jobs", headers=_headers(token)).json_body["jobs"]
    assert [j["name"] for j in listed if j["jobId"] == job_id] == ["Spring shoes"]
    view = client.http.get(f"/jobs/{job_id}?limit=0", headers=_headers(token)).json_body
    assert view["name"] == "Spring shoes"
    write_job_images(job_id)
    _finish(store, job_id, {0: "FAILED"})
    retried = client.http.post(f"/jobs/{job_id}/retry", headers=_headers(token), body=b"{}").json_body
    retry_view = client.http.get(f"/jobs/{retried['jobId']}?limit=0", headers=_headers(token)).json_body
    assert retry_view["name"] == "Retry of Spring shoes"  # not an unlabelled one-photo job


@pytest.mark.parametrize(("name", "says"), [(7, "must be a string"), ("x" * 101, "at most 100 characters")])
def test_a_batch_name_that_cannot_be_kept_is_refused_naming_it(client: Client, token_for, photo, name, says) -> None:
    answer = _submit(client, token_for("owner-1"), [_upload("owner-1", photo())], name=name)
    assert answer.status_code == 400 and says in answer.body.decode()
    assert answer.json_body["details"][0]["field"] == "name"


def test_the_job_view_says_when_the_job_will_be_done_planned_then_measured(
    client: Client, token_for, photo, store, monkeypatch
) -> None:
    from datetime import UTC, datetime, timedelta

    monkeypatch.setenv("BACKDROP_MAP_CONCURRENCY", "4")
    token = token_for("owner-1")
    answer = _submit(client, token, [_upload("owner-1", photo()) for _ in range(8)]).json_body
    job_id = answer["jobId"]
    # the default model: remove-background then inpaint, 2 calls of ~6 s and ~3 s of Lambda a photo,
    # 4 in flight, set 25 % above the quota's pace: 4 / 1.25 × 60 / 15 = 12.8 photos a minute, 8 in 37.5 s
    assert answer["eta"]["basis"] == "planned" and answer["eta"]["imagesPerMinute"] == 12.8
    assert answer["eta"]["seconds"] == 38
    write_job_images(job_id)
    started = (datetime.now(UTC) - timedelta(seconds=120)).strftime("%Y-%m-%dT%H:%M:%SZ")
    store.table.update_item(
        Key={"pk": contracts.job_pk(job_id), "sk": contracts.JOB_SK},
        UpdateExpression="SET startedAt = :t, #s = :running",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":t": started, ":running": "RUNNING"},
    )
    images = sorted(store.images(job_id), key=lambda i: i["name"])
    for image, status in zip(images, ("SUCCEEDED", "SUCCEEDED", "FAILED", "SUCCEEDED"), strict=False):
        assert store.set_image_status(job_id, image["imageId"], ImageStatus(status), error_code="MODEL_ERROR")
    view = client.http.get(f"/jobs/{job_id}?limit=0", headers=_headers(token)).json_body
    # 4 finished in 120 s: 2 a minute, so the 4 left take about 2 minutes
    assert view["eta"]["basis"] == "measured" and view["eta"]["remaining"] == 4
    assert 110 <= view["eta"]["seconds"] <= 125 and view["eta"]["words"].startswith("About 2 min left")


def test_polling_a_job_builds_only_the_clients_its_answer_needs(
    client: Client, token_for, photo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #28.3: a poller's GET /jobs/{id}?limit=0 reads the table alone (no S3, no Rekognition
    client built for it); the page of images builds S3 for its links, never Rekognition."""
    token = token_for("owner-1")
    response = _submit(client, token, [_upload("owner-1", photo())])
    assert response.status_code == 202, response.body
    job_id = response.json_body["jobId"]
    write_job_images(job_id)
    made: list[str] = []
    real = aws.client

    def recording(service: str) -> Any:
        made.append(service)
        return real(service)

    recording.cache_clear = real.cache_clear  # type: ignore[attr-defined]  # the fixtures' aws.reset()
    monkeypatch.setattr(aws, "client", recording)
    polled = client.http.get(f"/jobs/{job_id}?limit=0", headers=_headers(token))
    assert polled.status_code == 200, polled.body
    assert made == []
    paged = client.http.get(f"/jobs/{job_id}", headers=_headers(token))
    assert paged.status_code == 200 and len(paged.json_body["images"]) == 1, paged.body
    assert set(made) == {"s3"}
