"""report.csv is UTF-8 with a byte order mark (so Excel shows non-ASCII names as written), and its
formula guard still holds (issue #26)."""

from __future__ import annotations

import codecs
import csv
import io
from typing import Any

import boto3
from builders import BUCKET

from chalicelib.core import contracts
from chalicelib.core.contracts import ImageStatus
from chalicelib.delivery.report import Reporter
from chalicelib.store.jobs import JobStore, NewImage

NAMES = ["café ☕ 写真.png", "Ünïcödé-Ørsted.jpg", '=HYPERLINK("http://evil.example","x").png']


def _report_csv(store: JobStore) -> tuple[bytes, str]:
    job_id = contracts.new_job_id()
    images = [
        NewImage(image_id=contracts.new_opaque_id(), image_ref=f"r{i}", key=f"uploads/owner-1/x{i}.png", name=name)
        for i, name in enumerate(NAMES)
    ]
    store.put_job(job_id=job_id, owner="owner-1", model="stability-inpaint", settings={"prompt": "x"}, images=images)
    for image in images:
        store.set_image_status(job_id, image.image_id, ImageStatus.SUCCEEDED, outputs=[])
    Reporter(boto3.client("s3"), store).write(job_id, "owner-1", BUCKET)
    answer: Any = boto3.client("s3").get_object(Bucket=BUCKET, Key=contracts.report_key("owner-1", job_id, "csv"))
    return answer["Body"].read(), answer["ContentType"]


def test_report_csv_starts_with_a_bom_and_keeps_non_ascii_names_and_the_formula_guard(store) -> None:
    body, content_type = _report_csv(store)
    assert body.startswith(codecs.BOM_UTF8) and not body.startswith(codecs.BOM_UTF8 * 2)
    assert content_type == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert list(rows[0])[0] == "imageId"  # the BOM is not part of the first header
    names = sorted(row["name"] for row in rows)
    assert names == sorted(["café ☕ 写真.png", "Ünïcödé-Ørsted.jpg", '\'=HYPERLINK("http://evil.example","x").png'])
