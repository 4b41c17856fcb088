"""Zip entry names made from users' file names (issue #26): no path separators of either kind, no
`..`, no drive or absolute paths, no control characters, each name once; read back from the zip."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import PurePosixPath, PureWindowsPath

import boto3
from builders import BUCKET

from backend.local import iam
from chalicelib.core import contracts
from chalicelib.core.contracts import ImageStatus, JobStatus
from chalicelib.delivery import archive
from chalicelib.store.jobs import JobStore, NewImage

OWNER = "owner-1"
HOSTILE = [
    "..\\..\\..\\Windows\\System32\\evil.png",
    "../../etc/cron.d/evil.png",
    "C:\\Users\\Public\\x.png",
    "C:evil.png",
    "/abs/olute.png",
    "\\\\server\\share\\unc.png",
    "line\r\nbreak.png",
    "..",
    "tab\there\x00nul.png",
    "rtl\u202egnp.exe.png",
    "same.png",
    "SAME.png",
    "same.png",
]


def _job(store: JobStore) -> str:
    s3 = boto3.client("s3")
    job_id = "20261124T120000Z-00000000aaaa"
    images = []
    for index, name in enumerate(HOSTILE):
        ref = contracts.image_ref_of("a" * 32, f"{index:032x}", "png")
        key = contracts.upload_key(OWNER, ref)
        s3.put_object(Bucket=BUCKET, Key=key, Body=f"original {index}".encode())
        # every image id starts 00000000: the 8 characters an entry takes from it are the same
        images.append(NewImage(f"{index:032x}", ref, key, name, (), ()))
    store.put_job(job_id=job_id, owner=OWNER, model="stability-inpaint", settings={"prompt": "x"}, images=images)
    for index in range(len(HOSTILE)):
        key = contracts.result_key(OWNER, job_id, f"{index:032x}", 1, "png")
        s3.put_object(Bucket=BUCKET, Key=key, Body=f"result {index}".encode())
        store.set_image_status(job_id, f"{index:032x}", ImageStatus.SUCCEEDED, outputs=[{"key": key, "variant": 1}])
    counts = {s.value: 0 for s in ImageStatus} | {"SUCCEEDED": len(HOSTILE)}
    store.finish_job(job_id, JobStatus.COMPLETED, counts, {}, contracts.utc_now_iso())
    return job_id


def test_hostile_file_names_make_safe_distinct_zip_entries(resources, store) -> None:
    s3 = boto3.client("s3")
    job_id = _job(store)
    request = archive.ArchiveRequest(OWNER, job_id, originals=True)
    with iam.running_as("background_work"):  # as the background worker builds it, checked against its policy
        archive.ArchiveService(s3, BUCKET, store).build(request)
    body = s3.get_object(Bucket=BUCKET, Key=request.zip_key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as zipped:
        names = zipped.namelist()
        assert len(names) == 2 * len(HOSTILE)
        assert len({n.casefold() for n in names}) == len(names)  # one per file, in any letter case
        for name in names:
            folder, _, leaf = name.partition("/")
            assert folder in ("results", "originals") and leaf and "/" not in leaf, name
            assert "\\" not in name and ":" not in name and ".." not in name, name
            assert not re.search(r"[\x00-\x1f\x7f-\x9f\u202e]", name), name
            assert not PurePosixPath(name).is_absolute() and not PureWindowsPath(name).drive, name
            assert not leaf.startswith((".", " ")), name
        # each entry still holds its own image, and keeps the readable part of its name
        results = {n: zipped.read(n) for n in names if n.startswith("results/")}
        assert sorted(results.values()) == sorted(f"result {i}".encode() for i in range(len(HOSTILE)))
        assert "results/evil-00000000-1.png" in results and "results/line__break-00000000-1.png" in results
        assert {"results/same-00000000-1.png", "results/SAME-00000000-1-2.png", "results/same-00000000-1-3.png"} <= set(
            results
        )
