"""The job's status report (JSON + CSV), the job's final status, and the email summary."""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Mapping
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from chalicelib import contracts
from chalicelib.contracts import ErrorCode, ImageStatus, JobStatus
from chalicelib.dynamo import plain, query_all
from chalicelib.errors import StorageError

CSV_COLUMNS = (
    "imageId",
    "name",
    "status",
    "errorCode",
    "cause",
    "model",
    "mode",
    "prompt",
    "seed",
    "variant",
    "outputKey",
    "width",
    "height",
    "startedAt",
    "finishedAt",
)
UNFINISHED_CAUSE = "the workflow stopped before this image finished"


def job_status_for(counts: Mapping[str, int]) -> JobStatus:
    succeeded = counts.get(ImageStatus.SUCCEEDED.value, 0)
    failed = counts.get(ImageStatus.FAILED.value, 0)
    if succeeded and not failed:
        return JobStatus.COMPLETED
    if succeeded:
        return JobStatus.PARTIAL
    return JobStatus.FAILED


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii").replace("\n", " ").replace("\r", " ")


class Reporter:
    def __init__(self, s3: Any, table: Any) -> None:
        self.s3 = s3
        self.table = table

    def _close_unfinished(self, job_id: str, image: dict[str, Any]) -> None:
        """An image the Map never finished is FAILED, in the table as in the report."""
        image.update(status=ImageStatus.FAILED.value, errorCode=ErrorCode.INTERNAL_ERROR.value, cause=UNFINISHED_CAUSE)
        self.table.update_item(
            Key={"pk": contracts.job_pk(job_id), "sk": image["sk"]},
            UpdateExpression="SET #s = :s, errorCode = :c, cause = :m, finishedAt = :t",
            ConditionExpression="#s IN (:pending, :running)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":s": ImageStatus.FAILED.value,
                ":c": ErrorCode.INTERNAL_ERROR.value,
                ":m": UNFINISHED_CAUSE,
                ":t": contracts.utc_now_iso(),
                ":pending": ImageStatus.PENDING.value,
                ":running": ImageStatus.RUNNING.value,
            },
        )

    def build(self, event: Mapping[str, Any]) -> dict[str, Any]:
        job_id = str(event["jobId"])
        owner = str(event["owner"])
        bucket = str(event["bucket"])
        job: dict[str, Any] | None = None
        images: list[dict[str, Any]] = []
        for item in query_all(self.table, KeyConditionExpression=Key("pk").eq(contracts.job_pk(job_id))):
            if item["sk"] == contracts.JOB_SK:
                job = item
            elif item["sk"].startswith(contracts.IMAGE_SK_PREFIX):
                images.append(item)
        if job is None or job.get("owner") != owner:
            raise StorageError(f"job {job_id} was not found for its owner")
        for image in images:
            if image.get("status") not in (ImageStatus.SUCCEEDED.value, ImageStatus.FAILED.value):
                try:
                    self._close_unfinished(job_id, image)
                except ClientError as exc:  # finished meanwhile: re-read it
                    if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                        raise
                    image.update(self.table.get_item(Key={"pk": image["pk"], "sk": image["sk"]})["Item"])
        images = [plain(i) for i in images]
        images.sort(key=lambda i: (i.get("name") or "", i["imageId"]))
        counts = Counter(i["status"] for i in images)
        counts_dict = {s.value: counts.get(s.value, 0) for s in ImageStatus}
        status = job_status_for(counts_dict)
        settings = plain(job.get("settings") or {})
        finished_at = contracts.utc_now_iso()
        stand_in = any(i.get("standIn") for i in images)
        map_error = event.get("mapError")

        report = {
            "jobId": job_id,
            "status": status.value,
            "model": job.get("model"),
            "settings": settings,
            "createdAt": job.get("createdAt"),
            "finishedAt": finished_at,
            "counts": {"total": len(images), **counts_dict},
            "standIn": stand_in,
            "workflowError": map_error,
            "images": [
                {
                    "imageId": i["imageId"],
                    "name": i.get("name"),
                    "status": i["status"],
                    "errorCode": i.get("errorCode"),
                    "cause": i.get("cause"),
                    "labels": i.get("labels") or [],
                    "prompt": i.get("prompt") or settings.get("prompt"),
                    "outputs": i.get("outputs") or [],
                    "width": i.get("width"),
                    "height": i.get("height"),
                    "startedAt": i.get("startedAt"),
                    "finishedAt": i.get("finishedAt"),
                }
                for i in images
            ],
        }
        self._write(
            bucket,
            contracts.report_key(owner, job_id, "json"),
            json.dumps(report, indent=2).encode(),
            "application/json",
        )
        self._write(
            bucket, contracts.report_key(owner, job_id, "csv"), self._csv(report, settings).encode(), "text/csv"
        )
        self.table.update_item(
            Key={"pk": contracts.job_pk(job_id), "sk": contracts.JOB_SK},
            UpdateExpression="SET #s = :s, counts = :c, finishedAt = :f, reportKeys = :r, standIn = :si",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":s": status.value,
                ":c": counts_dict,
                ":f": finished_at,
                ":r": {fmt: contracts.report_key(owner, job_id, fmt) for fmt in ("json", "csv")},
                ":si": stand_in,
            },
        )
        subject, message = self.summary(report, bucket, owner)
        return {"status": status.value, "counts": counts_dict, "subject": subject, "message": message}

    def _write(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        try:
            self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        except ClientError as exc:
            raise StorageError(f"could not write the report to s3://{bucket}/{key}: {exc}") from exc

    @staticmethod
    def _csv(report: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for image in report["images"]:
            base = {
                **{k: image.get(k) for k in ("imageId", "name", "status", "errorCode", "cause", "prompt")},
                **{k: image.get(k) for k in ("width", "height", "startedAt", "finishedAt")},
                "model": report["model"],
                "mode": settings.get("mode"),
                "seed": settings.get("seed"),
            }
            outputs = image["outputs"] or [None]  # a row per image and variant; failed images get one row
            for output in outputs:
                row = dict(base)
                if output:
                    row.update(
                        variant=output.get("variant"),
                        outputKey=output.get("key"),
                        seed=output.get("seed", base["seed"]),
                    )
                writer.writerow(row)
        return buf.getvalue()

    @staticmethod
    def summary(report: Mapping[str, Any], bucket: str, owner: str) -> tuple[str, str]:
        counts = report["counts"]
        job_id = report["jobId"]
        subject = _ascii(
            f"Backdrop job {job_id}: {counts['SUCCEEDED']} of {counts['total']} images done ({report['status']})"
        )[: contracts.SNS_SUBJECT_MAX_LENGTH]
        lines = [
            f"Backdrop finished job {job_id} with status {report['status']}.",
            "",
            f"Images: {counts['total']}   succeeded: {counts['SUCCEEDED']}   failed: {counts['FAILED']}",
            f"Model: {report['model']}",
        ]
        if report.get("standIn"):
            lines.append("NOTE: images were made by the local Bedrock stand-in, not by a real model.")
        if report.get("workflowError"):
            lines.append("The workflow itself reported an error; unfinished images are marked FAILED.")
        failed = [i for i in report["images"] if i["status"] == ImageStatus.FAILED.value]
        if failed:
            lines += ["", "Failed images:"]
            for image in failed[: contracts.SNS_MAX_FAILURES_LISTED]:
                lines.append(f"- {image['name']}: {image['errorCode']} - {image['cause']}")
            if len(failed) > contracts.SNS_MAX_FAILURES_LISTED:
                lines.append(f"- ... and {len(failed) - contracts.SNS_MAX_FAILURES_LISTED} more (see the report)")
        where = os.environ.get("BACKDROP_APP_URL")
        lines += [
            "",
            "Where to see the results:",
            f"- {where.rstrip('/')}/jobs/{job_id}" if where else f"- the Backdrop app or API: GET /jobs/{job_id}",
            f"- report: s3://{bucket}/{contracts.report_key(owner, job_id, 'json')} (and .csv)",
            f"- results: s3://{bucket}/{contracts.job_results_prefix(owner, job_id)}",
        ]
        message = "\n".join(lines)
        encoded = message.encode()
        if len(encoded) > contracts.SNS_MESSAGE_MAX_BYTES:
            message = (
                encoded[: contracts.SNS_MESSAGE_MAX_BYTES].decode(errors="ignore") + "\n[truncated: see the report]"
            )
        return subject, message

    def record_notification_failure(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The email could not be sent: say so on the job, where the API and UI show it."""
        error = event.get("notifyError") or {}
        self.table.update_item(
            Key={"pk": contracts.job_pk(str(event["jobId"])), "sk": contracts.JOB_SK},
            UpdateExpression="SET notification = :n",
            ExpressionAttributeValues={
                ":n": {
                    "status": "FAILED",
                    "error": str(error.get("Error") or "unknown"),
                    "cause": str(error.get("Cause") or "")[:2000],
                    "at": contracts.utc_now_iso(),
                }
            },
        )
        return {"notification": "FAILED"}
