"""Archives on request through the HTTP API on moto: built once, in the backend, with progress."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import boto3
import pytest
from builders import BUCKET
from chalice.test import Client

import app as backdrop_app
from chalicelib.core import contracts
from chalicelib.core.contracts import ImageStatus, JobStatus
from chalicelib.delivery import archive
from chalicelib.store.jobs import JobStore, NewImage

OWNER = "owner-1"


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": token, "Content-Type": "application/json"}


def _finished_job(store: JobStore, count: int, *, failed: int = 0, suffix: str = "0123456789ab") -> str:
    """A finished job whose results, originals and report are in S3."""
    s3 = boto3.client("s3")
    job_id = f"20261124T120000Z-{suffix}"
    images = []
    for index in range(count):
        ref = contracts.image_ref_of("a" * 32, f"{index:032x}", "jpg")
        key = contracts.upload_key(OWNER, ref)
        s3.put_object(Bucket=BUCKET, Key=key, Body=f"original {index}".encode())
        images.append(NewImage(f"{index:032x}", ref, key, f"shoe {index}.jpg", (), ()))
    store.put_job(job_id=job_id, owner=OWNER, model="stability-inpaint", settings={"prompt": "x"}, images=images)
    for index in range(count):
        image_id = f"{index:032x}"
        if index < failed:
            store.set_image_status(job_id, image_id, ImageStatus.FAILED, error_code="NO_SUBJECT", cause="x")
            continue
        key = contracts.result_key(OWNER, job_id, image_id, 1, "jpeg")
        s3.put_object(Bucket=BUCKET, Key=key, Body=f"result {index}".encode())
        store.set_image_status(job_id, image_id, ImageStatus.SUCCEEDED, outputs=[{"key": key, "variant": 1}])
    report_keys = {fmt: contracts.report_key(OWNER, job_id, fmt) for fmt in ("json", "csv")}
    for fmt, key in report_keys.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=f"report {fmt}".encode())
    counts = {s.value: 0 for s in ImageStatus} | {"SUCCEEDED": count - failed, "FAILED": failed}
    status = JobStatus.PARTIAL if failed else JobStatus.COMPLETED
    store.finish_job(job_id, status, counts, report_keys, contracts.utc_now_iso())
    return job_id


def _zip(url: str) -> zipfile.ZipFile:
    key = url.split(f"{BUCKET}/", 1)[1].split("?", 1)[0] if f"{BUCKET}/" in url else url.split("?")[0].split("/", 3)[3]
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return zipfile.ZipFile(io.BytesIO(body))


def test_a_small_archive_is_built_once_within_the_request(client: Client, token_for, store, monkeypatch) -> None:
    job_id = _finished_job(store, 3, failed=1)
    token = token_for(OWNER)
    built = []
    real_build = archive.ArchiveService.build
    monkeypatch.setattr(archive.ArchiveService, "build", lambda self, r: built.append(r) or real_build(self, r))
    answer = client.http.post(f"/jobs/{job_id}/archive", headers=_headers(token), body=json.dumps({"report": True}))
    assert answer.status_code == 200, answer.body
    ready = answer.json_body
    assert ready["state"] == "READY" and ready["expiresIn"] == contracts.ARCHIVE_URL_TTL_SECONDS
    with _zip(ready["url"]) as zipped:
        assert sorted(zipped.namelist()) == [
            "report.csv",
            "report.json",
            "results/shoe 1-00000000-1.jpg",
            "results/shoe 2-00000000-1.jpg",
        ]
        assert zipped.read("results/shoe 2-00000000-1.jpg") == b"result 2"
    again = client.http.post(f"/jobs/{job_id}/archive", headers=_headers(token), body=json.dumps({"report": True}))
    assert again.json_body["state"] == "READY" and len(built) == 1  # built once, then only linked
    got = client.http.get(f"/jobs/{job_id}/archive?report=true", headers=_headers(token)).json_body
    assert got["state"] == "READY" and got["bytes"] == ready["bytes"] > 0
    other = client.http.get(f"/jobs/{job_id}/archive?originals=true", headers=_headers(token)).json_body
    assert other["state"] == "NONE"  # another choice of contents is another zip


@pytest.mark.slow  # ~4 s of CPU: a large archive: make test, not make test-fast
def test_a_large_archive_is_built_by_the_background_worker_with_progress(
    client: Client, token_for, store, monkeypatch
) -> None:
    job_id = _finished_job(store, archive.SYNC_MAX_FILES + 20)
    token = token_for(OWNER)
    started: list[dict[str, Any]] = []
    monkeypatch.setattr(backdrop_app, "start_background", started.append)
    answer = client.http.post(f"/jobs/{job_id}/archive", headers=_headers(token), body=json.dumps({"originals": True}))
    assert answer.status_code == 202
    files = 2 * (archive.SYNC_MAX_FILES + 20)
    assert answer.json_body == {"state": "BUILDING", "kind": "results-originals", "done": 0, "total": files}
    assert [(e["kind"], e["jobId"], e["owner"], e["options"]) for e in started] == [
        ("ARCHIVE", job_id, OWNER, {"originals": True, "report": False})
    ]
    # asked again while it builds: its progress, and no second build
    again = client.http.post(f"/jobs/{job_id}/archive", headers=_headers(token), body=json.dumps({"originals": True}))
    assert again.status_code == 202 and len(started) == 1
    result = backdrop_app.background_work(started[0], None)  # what the Lambda does, as Lambda calls it
    assert result["files"] == files
    ready = client.http.get(f"/jobs/{job_id}/archive?originals=true", headers=_headers(token)).json_body
    assert ready["state"] == "READY"
    with _zip(ready["url"]) as zipped:
        assert len(zipped.namelist()) == files and zipped.testzip() is None


def test_archive_requests_are_refused_clearly(client: Client, token_for, store) -> None:
    job_id = _finished_job(store, 2)
    stranger = client.http.post(f"/jobs/{job_id}/archive", headers=_headers(token_for("owner-2")), body="{}")
    assert stranger.status_code == 404
    bad = client.http.post(f"/jobs/{job_id}/archive", headers=_headers(token_for(OWNER)), body='{"zip": true}')
    assert bad.status_code == 400 and "unknown archive option" in bad.json_body["message"]
    bad = client.http.get(f"/jobs/{job_id}/archive?report=maybe", headers=_headers(token_for(OWNER)))
    assert bad.status_code == 400 and "report must be true or false" in bad.json_body["message"]


def test_a_running_job_has_no_archive_yet(client: Client, token_for, store) -> None:
    ref = contracts.image_ref_of("a" * 32, "0" * 32, "jpg")
    store.put_job(
        job_id="20261124T120000Z-aaaaaaaaaaaa",
        owner=OWNER,
        model="stability-inpaint",
        settings={"prompt": "x"},
        images=[NewImage("0" * 32, ref, contracts.upload_key(OWNER, ref), "a.jpg", (), ())],
    )
    answer = client.http.post(
        "/jobs/20261124T120000Z-aaaaaaaaaaaa/archive", headers=_headers(token_for(OWNER)), body="{}"
    )
    assert answer.status_code == 409 and "still SUBMITTED" in answer.json_body["message"]


def test_a_multipart_zip_larger_than_one_part_is_whole(resources, store, monkeypatch) -> None:
    monkeypatch.setattr(archive, "PART_BYTES", 5 * 1024 * 1024)  # S3's smallest part
    s3 = boto3.client("s3")
    job_id = _finished_job(store, 3)
    big = bytes(range(256)) * (3 * 1024 * 16)  # 12 MiB of incompressible-looking bytes
    image = store.images(job_id)[0]
    s3.put_object(Bucket=BUCKET, Key=image["outputs"][0]["key"], Body=big)
    result = archive.ArchiveService(s3, BUCKET, store).build(archive.ArchiveRequest(OWNER, job_id))
    assert result["bytes"] > len(big)
    key = contracts.archive_key(OWNER, job_id, "results")
    with zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())) as zipped:
        assert zipped.read("results/shoe 0-00000000-1.jpg") == big and zipped.testzip() is None


def _expire_original(index: int) -> str:
    """S3's lifecycle rule removed this upload (originals are kept fewer days than results)."""
    ref = contracts.image_ref_of("a" * 32, f"{index:032x}", "jpg")
    boto3.client("s3").delete_object(Bucket=BUCKET, Key=contracts.upload_key(OWNER, ref))
    return f"originals/shoe {index}-00000000.jpg"


def test_an_archive_with_expired_originals_leaves_them_out_and_lists_them(client: Client, token_for, store) -> None:
    job_id = _finished_job(store, 3)
    gone = [_expire_original(0), _expire_original(2)]
    token = token_for(OWNER)
    answer = client.http.post(f"/jobs/{job_id}/archive", headers=_headers(token), body=json.dumps({"originals": True}))
    assert answer.status_code == 200, answer.body
    ready = answer.json_body
    assert ready["state"] == "READY"
    assert ready["missingOriginals"] == gone and ready["missingOriginalsCount"] == 2
    with _zip(ready["url"]) as zipped:
        names = sorted(zipped.namelist())
        assert names == sorted(
            [f"results/shoe {i}-00000000-1.jpg" for i in range(3)]
            + ["originals/shoe 1-00000000.jpg", archive.MISSING_ORIGINALS_NAME]
        )
        note = zipped.read(archive.MISSING_ORIGINALS_NAME).decode()
        assert all(name in note for name in gone) and "30 days" in note
    # asked again later: the same answer, from the zip already built
    again = client.http.get(f"/jobs/{job_id}/archive?originals=true", headers=_headers(token)).json_body
    assert again["missingOriginals"] == gone


class _S3WithoutListBucket:
    """S3 as a role without s3:ListBucket sees it: a missing key answers 403 AccessDenied, not 404."""

    def __init__(self) -> None:
        self.real = boto3.client("s3")

    def get_object(self, **kwargs: Any) -> Any:
        try:
            return self.real.get_object(**kwargs)
        except self.real.exceptions.NoSuchKey as exc:
            from botocore.exceptions import ClientError

            error = {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}, "ResponseMetadata": {}}
            raise ClientError(error, "GetObject") from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_an_expired_original_answering_403_is_left_out_but_a_missing_result_still_fails(
    resources: dict[str, Any], store
) -> None:
    job_id = _finished_job(store, 2)
    gone = _expire_original(1)
    service = archive.ArchiveService(_S3WithoutListBucket(), BUCKET, store)
    built = service.build(archive.ArchiveRequest(OWNER, job_id, originals=True))
    assert built["missingOriginals"] == [gone] and built["files"] == 3
    # a result that is gone is not an expiry Backdrop expects: the archive fails and says why
    boto3.client("s3").delete_object(Bucket=BUCKET, Key=contracts.result_key(OWNER, job_id, f"{0:032x}", 1, "jpeg"))
    with pytest.raises(Exception, match="AccessDenied"):
        service.build(archive.ArchiveRequest(OWNER, job_id, originals=False, report=True))
