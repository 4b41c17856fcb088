"""The job's status report (JSON + CSV), the job's final status, and the email summary."""

from __future__ import annotations

import csv
import io
import json
import os
import unicodedata
from collections import Counter
from collections.abc import Mapping
from typing import Any, Final

from botocore.exceptions import ClientError

from chalicelib.catalogue import costs
from chalicelib.core import contracts
from chalicelib.core.contracts import BackgroundSource, ErrorCode, ImageStatus, JobStatus
from chalicelib.core.errors import StorageError, client_error_code
from chalicelib.delivery import provenance
from chalicelib.delivery.notify import is_missing_topic
from chalicelib.imaging import consistency, quality
from chalicelib.store.jobs import CANCELLED_CAUSE, UNFINISHED_CAUSE, JobStore

CSV_ENCODING = "utf-8-sig"  # UTF-8 with a byte order mark (Reporter._csv_body says why)
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
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
    # variants (chalicelib/delivery/variants.py): the one delivered (true on one row per image) and who chose it
    "delivered",
    "pickedBy",
    "outputKey",
    "producedBy",
    # provenance (chalicelib/delivery/provenance.py): a signed C2PA manifest in the file, its IPTC digital source type
    "contentCredentials",
    "digitalSourceType",
    "width",
    "height",
    "startedAt",
    "finishedAt",
    # the output's scorecard (chalicelib.imaging.quality): outcome, the reasons that are not PASS, figures
    "quality",
    "qualitySummary",
    "subjectPsnrDb",
    "subjectDeltaE",
    "haloDeltaE",
    # backgrounds (chalicelib.core.backgrounds, chalicelib.catalogue.presets): the source, the preset's verdict
    # with the rules that failed, and what Backdrop did (re-framing, enlargement)
    "background",
    "compliance",
    "complianceFailures",
    "notes",
    # every attempt at the image (automatic re-rolls), in order: the kept one, each one's seed,
    # outcome (or error code) and the image's total cost (model calls and Rekognition checks)
    "attempts",
    "keptAttempt",
    "attemptSeeds",
    "attemptOutcomes",
    "costUsd",
)


def job_status_for(counts: Mapping[str, int]) -> JobStatus:
    succeeded = counts.get(ImageStatus.SUCCEEDED.value, 0)
    failed = counts.get(ImageStatus.FAILED.value, 0)
    if succeeded and not failed:
        return JobStatus.COMPLETED
    if succeeded:
        return JobStatus.PARTIAL
    return JobStatus.FAILED


# A cell starting with one of these is read as a formula by Excel, LibreOffice and Google Sheets
# (OWASP "CSV Injection"; ASVS 1.2.10 adds NUL). Image names and prompts are user text.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")


def spreadsheet_safe(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: a text cell that would start a formula (also
    after leading blanks) gets a leading single quote, which spreadsheets take as "this is text".
    Numbers and empty cells are unchanged; the JSON report keeps the exact values."""
    if isinstance(value, str) and (value.startswith(FORMULA_TRIGGERS) or value.lstrip().startswith(FORMULA_TRIGGERS)):
        return "'" + value
    return value


def _quality_columns(scorecard: Mapping[str, Any] | None) -> dict[str, Any]:
    if not scorecard:
        return {}
    card = quality.Scorecard.from_dict(scorecard)
    fidelity = card.get(quality.CheckName.SUBJECT_FIDELITY)
    halo = card.get(quality.CheckName.EDGE_HALO)
    return {
        "quality": card.outcome.value,
        "qualitySummary": card.summary(),
        "subjectPsnrDb": fidelity.metrics.get("psnrDb") if fidelity else None,  # "Infinity" when identical
        "subjectDeltaE": fidelity.metrics.get("deltaE") if fidelity else None,
        "haloDeltaE": halo.metrics.get("haloDeltaE") if halo else None,
    }


def _background_columns(output: Mapping[str, Any]) -> dict[str, Any]:
    compliance = output.get("compliance") or {}
    failures = [f"{c['rule']}: {c['reason']}" for c in compliance.get("checks") or [] if c.get("outcome") == "FAIL"]
    return {
        "background": output.get("background"),
        "compliance": f"{compliance['preset']} {compliance['outcome']}" if compliance else None,
        "complianceFailures": "; ".join(failures) or None,
        "notes": "; ".join(output.get("notes") or []) or None,
    }


# What may not reach the email's text from a name, a cause or a model's words: a line break (CR, LF,
# VT, FF, NEL, U+2028/2029) would start a line the user did not write the email to have ("Failed
# images:" followed by whatever a file name says), another control or format character (a
# right-to-left override) would disguise what a name is. Spacing becomes a space, the rest "?".
_EMAIL_SPACES: Final = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029")


def email_text(value: Any) -> str:
    """A user's (or a model's) text as one line of the email: no line breaks, no control or
    format characters."""
    return "".join(
        " " if c in _EMAIL_SPACES else "?" if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c
        for c in str(value)
    )


def _consistency_lines(found: Mapping[str, Any] | None) -> list[str]:
    """The batch's consistency (scene and colour batches), and its outliers."""
    if not found:
        return []
    fill = found["fill"]
    lines = [
        "",
        f"Batch consistency: subject fill {fill['min']}-{fill['max']}% (median {fill['median']}%), "
        f"background difference up to {found['backgroundDifference']['max']} of 255.",
    ]
    lines += [
        f"- outlier {email_text(o['name'])}: {email_text('; '.join(o['reasons']))}" for o in found["outliers"][:20]
    ]
    return lines


def _attempt_columns(attempts: list[Mapping[str, Any]] | None) -> dict[str, Any]:
    if not attempts:
        return {}
    kept = next((a["attempt"] for a in attempts if a.get("kept")), None)
    return {
        "attempts": len(attempts),
        "keptAttempt": kept,
        "attemptSeeds": ";".join(str(a.get("seed", "")) for a in attempts),
        "attemptOutcomes": ";".join(str(a.get("outcome") or a.get("errorCode") or "") for a in attempts),
        "costUsd": round(sum(float(a.get("costUsd") or 0) for a in attempts), 4),
    }


def _quality_lines(images: list[Mapping[str, Any]]) -> list[str]:
    """Scorecard outcomes over every output, and the outputs to look at (FAIL first, then WARN)."""
    flagged: list[tuple[str, str, str]] = []
    counts: Counter[str] = Counter()
    stand_in: dict[str, None] = {}  # the checks the local stack could not run, each said once
    for image in images:
        for output in image.get("outputs") or []:
            if not output.get("quality"):
                continue
            card = quality.Scorecard.from_dict(output["quality"])
            stand_in.update(dict.fromkeys(card.stand_in_notes()))
            counts[card.outcome.value] += 1
            if card.outcome in (quality.Outcome.FAIL, quality.Outcome.WARN):
                variant = f" (variant {output.get('variant')})" if len(image.get("outputs") or []) > 1 else ""
                flagged.append((card.outcome.value, f"{image.get('name')}{variant}", card.summary()))
    if not counts:
        return []
    tally = "   ".join(f"{o.value}: {counts[o.value]}" for o in quality.Outcome if counts[o.value])
    lines = ["", f"Quality checks: {tally}"]
    lines.extend(f"  {email_text(note)}" for note in stand_in)
    re_rolled = [i for i in images if len(i.get("attempts") or []) > 1]
    if re_rolled:
        extra = sum(len(i["attempts"]) - 1 for i in re_rolled)
        improved = sum(1 for i in re_rolled if not any(a.get("kept") for a in i["attempts"][:1]))
        lines.append(
            f"Re-rolled: {len(re_rolled)} image(s) made again with a new seed ({extra} extra attempt(s)); "
            f"a later attempt was kept for {improved}"
        )
    flagged.sort(key=lambda f: f[0] != quality.Outcome.FAIL.value)
    for _, name, summary in flagged[: contracts.SNS_MAX_FAILURES_LISTED]:
        lines.append(f"- {email_text(name)}: {email_text(summary)}")
    if len(flagged) > contracts.SNS_MAX_FAILURES_LISTED:
        lines.append(f"- ... and {len(flagged) - contracts.SNS_MAX_FAILURES_LISTED} more (see the report)")
    return lines


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii").replace("\n", " ").replace("\r", " ")


TRUNCATED: Final = "\n[truncated: see the report]"


def _state_bytes(text: str) -> int:
    """The text's size inside the workflow's state: its JSON string in UTF-8 (quotes, newlines
    and backslashes escaped), as Step Functions counts its 256 KiB."""
    return len(json.dumps(text, ensure_ascii=False).encode())


def fit_message(message: str) -> str:
    """The email's text within contracts.SNS_MESSAGE_MAX_BYTES, counted as it travels: in UTF-8
    for SNS, and as a JSON string in the workflow's state ("Email the summary" reads it there),
    whose escapes can double a name full of quotes or backslashes
    (docs/aws-notes.md#n74-what-the-parent-execution-carries-to-the-email)."""
    if _state_bytes(message) <= contracts.SNS_MESSAGE_MAX_BYTES:
        return message
    encoded = message.encode()
    cut = min(len(encoded), contracts.SNS_MESSAGE_MAX_BYTES)
    while True:
        fitted = encoded[:cut].decode(errors="ignore") + TRUNCATED
        size = _state_bytes(fitted)
        if size <= contracts.SNS_MESSAGE_MAX_BYTES:
            return fitted
        # escapes grow the text in proportion: cut in proportion, and always by something
        cut = max(0, min(cut - 64, cut * contracts.SNS_MESSAGE_MAX_BYTES // size - len(TRUNCATED)))


class Reporter:
    def __init__(self, s3: Any, store: JobStore) -> None:
        self.s3 = s3
        self.store = store

    def build(
        self,
        event: Mapping[str, Any],
        *,
        unfinished_code: ErrorCode = ErrorCode.INTERNAL_ERROR,
        unfinished_cause: str = UNFINISHED_CAUSE,
    ) -> dict[str, Any]:
        """Close the images that never finished (with `unfinished_code` and `unfinished_cause`),
        write report.json and report.csv, and set the job's final status; answers the status,
        counts and the email's subject and text. Running it again rewrites the same report: the
        workflow's Report step and the reconciler may both run."""
        job_id = str(event["jobId"])
        owner = str(event["owner"])
        bucket = str(event["bucket"])
        report = self.write(
            job_id,
            owner,
            bucket,
            map_error=event.get("mapError"),
            unfinished_code=unfinished_code,
            unfinished_cause=unfinished_cause,
        )
        subject, message = self.summary(report, bucket, owner)
        counts = {k: v for k, v in report["counts"].items() if k != "total"}
        return {"status": report["status"], "counts": counts, "subject": subject, "message": message}

    def write(
        self,
        job_id: str,
        owner: str,
        bucket: str,
        *,
        map_error: Any = None,
        unfinished_code: ErrorCode = ErrorCode.INTERNAL_ERROR,
        unfinished_cause: str = UNFINISHED_CAUSE,
    ) -> dict[str, Any]:
        """Close the images that never finished, write the JSON and CSV report and the job's final
        status; returns the report. A cancelled job stays CANCELLED and its unfinished images end
        CANCELLED; if the job is cancelled while this runs, the report is written again as such."""
        for _ in range(2):
            job = self.store.get_job(job_id)
            if job is None or job.get("owner") != owner:
                raise StorageError(f"job {job_id} was not found for its owner")
            if (job.get("review") or {}).get("status") == contracts.ReviewStatus.WAITING.value:
                # the report runs while the owner has not approved: the deadline passed (or the
                # wait failed); delivered as it is, with the decisions made so far
                self.store.close_review(job_id, contracts.ReviewStatus.EXPIRED)
                job = self.store.get_job(job_id) or job
            cancelled = job.get("status") == JobStatus.CANCELLED.value
            if cancelled:
                images = self.store.close_unfinished(job_id, CANCELLED_CAUSE, code=None, status=ImageStatus.CANCELLED)
            else:  # an image the Map never finished is FAILED, in the table as in the report
                images = self.store.close_unfinished(job_id, unfinished_cause, code=unfinished_code)
            images.sort(key=lambda i: (i.get("name") or "", i["imageId"]))
            counts = Counter(i["status"] for i in images)
            counts_dict = {s.value: counts.get(s.value, 0) for s in ImageStatus}
            status = JobStatus.CANCELLED if cancelled else job_status_for(counts_dict)
            report = self._report(job, images, status, counts_dict, map_error)
            report_keys = {fmt: contracts.report_key(owner, job_id, fmt) for fmt in ("json", "csv")}
            self._write(bucket, report_keys["json"], json.dumps(report, indent=2).encode(), "application/json")
            self._write(bucket, report_keys["csv"], self._csv_body(report, job.get("settings") or {}), CSV_CONTENT_TYPE)
            if self.store.finish_job(job_id, status, counts_dict, report_keys, report["finishedAt"]):
                return report
            # cancelled meanwhile: write the cancelled report instead
        raise StorageError(f"the final status of job {job_id} could not be written")

    @staticmethod
    def _report(
        job: Mapping[str, Any],
        images: list[dict[str, Any]],
        status: JobStatus,
        counts: Mapping[str, int],
        map_error: Any,
    ) -> dict[str, Any]:
        settings = job.get("settings") or {}
        # what made the outputs, as the model outputs named it (contracts.PROVENANCE_TEXT_KEY)
        produced_by = sorted({o["producedBy"] for i in images for o in i.get("outputs") or [] if o.get("producedBy")})
        report = {
            "jobId": job["jobId"],
            "status": status.value,
            "model": job.get("model"),
            "settings": settings,
            "createdAt": job.get("createdAt"),
            "finishedAt": contracts.utc_now_iso(),
            "counts": {"total": len(images), **counts},
            "producedBy": produced_by,
            # whether the results carry signed Content Credentials (chalicelib/delivery/provenance.py)
            "contentCredentials": provenance.job_summary(settings, [o for i in images for o in i.get("outputs") or []]),
            # what the job cost, its estimate and its budget cap: the figures its views show
            "cost": costs.job_cost(job),
            # review before delivery: how it ended and what the owner left out
            "review": {k: v for k, v in (job.get("review") or {}).items() if k != "token"} or None,
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
                    "reviewDecision": i.get("reviewDecision"),
                    # each attempt: seed, outcome, score, cost, scorecards, kept (automatic re-rolls)
                    "attempts": i.get("attempts") or [],
                    "width": i.get("width"),
                    "height": i.get("height"),
                    "startedAt": i.get("startedAt"),
                    "finishedAt": i.get("finishedAt"),
                }
                for i in images
            ],
        }
        if job.get("cancelledAt"):
            report["cancelledAt"] = job["cancelledAt"]
        source = (settings.get("background") or {}).get("source")
        if source in (BackgroundSource.COLOR.value, BackgroundSource.SCENE.value):
            report["consistency"] = consistency.batch_consistency(
                [
                    (i.get("name") or i["imageId"], o["consistency"])
                    for i in images
                    for o in i.get("outputs") or []
                    if o.get("consistency")
                ]
            )
        return report

    def rewrite(self, job_id: str, owner: str, bucket: str) -> dict[str, Any]:
        """Write a finished job's report again from its images as they are now (the owner picked
        another variant, or a regenerated one was added): its status, finish time and workflow
        error stay as they were; `updatedAt` says when. Nothing else about the job changes."""
        job = self.store.get_job(job_id)
        if job is None or job.get("owner") != owner:
            raise StorageError(f"job {job_id} was not found for its owner")
        earlier = self.load(bucket, owner, job_id) or {}
        images = sorted(self.store.images(job_id), key=lambda i: (i.get("name") or "", i["imageId"]))
        counts = Counter(i["status"] for i in images)
        counts_dict = {s.value: counts.get(s.value, 0) for s in ImageStatus}
        report = self._report(job, images, JobStatus(job["status"]), counts_dict, earlier.get("workflowError"))
        report["finishedAt"] = earlier.get("finishedAt") or job.get("finishedAt") or report["finishedAt"]
        report["updatedAt"] = contracts.utc_now_iso()
        self._write(
            bucket,
            contracts.report_key(owner, job_id, "json"),
            json.dumps(report, indent=2).encode(),
            "application/json",
        )
        csv_body = self._csv_body(report, job.get("settings") or {})
        self._write(bucket, contracts.report_key(owner, job_id, "csv"), csv_body, CSV_CONTENT_TYPE)
        return report

    def load(self, bucket: str, owner: str, job_id: str) -> dict[str, Any] | None:
        """The job's report.json as written, or None if there is none."""
        try:
            body = self.s3.get_object(Bucket=bucket, Key=contracts.report_key(owner, job_id, "json"))["Body"].read()
        except ClientError as exc:
            if client_error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise StorageError(f"could not read the report of job {job_id}: {exc}") from exc
        report = json.loads(body)
        if not isinstance(report, dict):
            raise StorageError(f"the report of job {job_id} is not a JSON object")
        return report

    def _write(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        try:
            self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        except ClientError as exc:
            raise StorageError(f"could not write the report to s3://{bucket}/{key}: {exc}") from exc

    @classmethod
    def _csv_body(cls, report: Mapping[str, Any], settings: Mapping[str, Any]) -> bytes:
        """report.csv's bytes: UTF-8 with a byte order mark. Excel reads a CSV without one in the
        system's legacy code page, so "café 写真.png" would show as mojibake; with it, Excel, Numbers,
        LibreOffice and Python's "utf-8-sig" read UTF-8. The BOM precedes the header row, so no cell
        changes and the formula guard (spreadsheet_safe) still starts every cell."""
        return cls._csv(report, settings).encode(CSV_ENCODING)

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
                        # an image recorded before variants were chosen between delivers every output
                        delivered=output.get("delivered", True),
                        pickedBy=output.get("pickedBy"),
                        outputKey=output.get("key"),
                        producedBy=output.get("producedBy"),
                        contentCredentials=output.get("contentCredentials"),
                        digitalSourceType=output.get("digitalSourceType"),
                        seed=output.get("seed", base["seed"]),
                        **_quality_columns(output.get("quality")),
                        **_background_columns(output),
                        **_attempt_columns(image.get("attempts")),
                    )
                writer.writerow({column: spreadsheet_safe(value) for column, value in row.items()})
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
            f"Images: {counts['total']}   succeeded: {counts['SUCCEEDED']}   failed: {counts['FAILED']}"
            + (f"   cancelled: {counts['CANCELLED']}" if counts.get("CANCELLED") else ""),
            f"Model: {report['model']}",
        ]
        spent = costs.cost_words(report.get("cost") or {}, finished=True)
        if spent:
            lines.append(spent)
        budget_stopped = sum(1 for i in report["images"] if i.get("errorCode") == ErrorCode.BUDGET_REACHED.value)
        if budget_stopped:
            lines.append(f"The budget was spent before {budget_stopped} image(s) could be sent to the model.")
        if (report.get("review") or {}).get("status") == contracts.ReviewStatus.EXPIRED.value:
            lines.append(
                "The review ended before approval (its deadline passed, or the job was cancelled): "
                "delivered with the decisions made by then."
            )
        rejected = sum(
            1 for i in report["images"] if i.get("reviewDecision") == contracts.ReviewDecision.REJECTED.value
        )
        if rejected:
            lines.append(f"Rejected in review, not delivered: {rejected} result(s).")
        for made_by in report.get("producedBy") or []:
            lines.append(f"Produced by: {email_text(made_by)}")
        if report.get("contentCredentials"):
            lines.append(provenance.email_line(report["contentCredentials"]))
        if report.get("workflowError"):
            lines.append("The workflow itself reported an error; unfinished images are marked FAILED.")
        failed = [i for i in report["images"] if i["status"] == ImageStatus.FAILED.value]
        if failed:
            lines += ["", "Failed images:"]
            for image in failed[: contracts.SNS_MAX_FAILURES_LISTED]:
                name, code, cause = (email_text(image.get(k)) for k in ("name", "errorCode", "cause"))
                lines.append(f"- {name}: {code} - {cause}")
            if len(failed) > contracts.SNS_MAX_FAILURES_LISTED:
                lines.append(f"- ... and {len(failed) - contracts.SNS_MAX_FAILURES_LISTED} more (see the report)")
        lines += _quality_lines(report["images"])
        lines += _consistency_lines(report.get("consistency"))
        where = os.environ.get("BACKDROP_APP_URL")
        if where:  # the job page shows the results, the report and the downloads, after signing in
            lines += ["", f"See the results: {contracts.job_page_url(where, job_id)}"]
        else:  # no web app configured for this deployment: say where the files are
            lines += [
                "",
                "Where to see the results:",
                f"- the Backdrop API: GET /jobs/{job_id}",
                f"- report: s3://{bucket}/{contracts.report_key(owner, job_id, 'json')} (and .csv)",
                f"- results: s3://{bucket}/{contracts.job_results_prefix(owner, job_id)}",
            ]
        lines += [
            "",
            "You get this email because you ran this job; nobody else does. For no email, submit a job with "
            '"notify": false (backdrop submit --no-email, or untick "Email me" in the web app).',
        ]
        return subject, fit_message("\n".join(lines))

    def record_notification_failure(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The email could not be sent: say so on the job, where the API and UI show it. An owner
        without a job-email topic is NO_SUBSCRIPTION (final: the reconciler does not try again)."""
        error = event.get("notifyError") or {}
        code, cause = str(error.get("Error") or "unknown"), str(error.get("Cause") or "")
        status = (
            contracts.NotificationStatus.NO_SUBSCRIPTION
            if is_missing_topic(code, cause)
            else contracts.NotificationStatus.FAILED
        )
        self.store.record_notification_failure(str(event["jobId"]), code, cause, status)
        return {"notification": status.value}
