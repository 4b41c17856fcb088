"""What GET /jobs and GET /jobs/{jobId} answer: a job's summary, one page of its images (chosen by
`?limit&cursor&status&verdict`), the list of a user's jobs, and a report's download link."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.catalogue import costs
from chalicelib.core import contracts, eta, query_params
from chalicelib.core.contracts import ImageStatus, JobStatus
from chalicelib.core.errors import (
    BadRequest,
    NotFound,
    ReportNotReady,
    service_failure,
)
from chalicelib.jobs import review
from chalicelib.store import s3keys
from chalicelib.store.jobs import MAX_IMAGES_PAGE_SIZE, JobStore


@dataclass(frozen=True)
class ImagesQuery:
    """Which page of a job's images GET /jobs/{jobId} answers with."""

    limit: int = contracts.DEFAULT_IMAGES_PAGE_SIZE
    cursor: str | None = None
    status: ImageStatus | None = None
    verdict: contracts.Verdict | None = None


def parse_images_query(params: Mapping[str, str] | None) -> ImagesQuery:
    """`?limit=0..100&cursor=...&status=FAILED&verdict=WARN`; anything else is a 400 naming the
    parameter."""
    limit = query_params.whole_number(
        params, "limit", low=0, high=MAX_IMAGES_PAGE_SIZE, default=contracts.DEFAULT_IMAGES_PAGE_SIZE
    )  # 0: the summary alone
    status = query_params.one_of(params, "status", [s.value for s in ImageStatus], None)
    verdict = query_params.one_of(params, "verdict", [v.value for v in contracts.Verdict], None)
    params = params or {}
    return ImagesQuery(
        limit,
        params.get("cursor") or None,
        ImageStatus(status) if status else None,
        contracts.Verdict(verdict) if verdict else None,
    )


class JobViews:
    """The read side of JobService: a job, its images and its report as the API shows them."""

    store: JobStore
    s3: Any
    bucket: str

    def get_job(self, owner: str, job_id: str) -> dict[str, Any]:
        # another owner's job looks exactly like a job that does not exist
        job = self.store.get_job(job_id)
        if not job or job.get("owner") != owner:
            raise NotFound(f"no job {job_id}")
        return job

    @staticmethod
    def summary(job: dict[str, Any]) -> dict[str, Any]:
        out = {k: job.get(k) for k in ("jobId", "status", "model", "createdAt", "finishedAt", "imageCount", "counts")}
        out["prompt"] = (job.get("settings") or {}).get("prompt")
        out["name"] = job.get("name")
        # every status, 0 when none (a job written before a status existed has no count for it)
        counts = job.get("counts") or {}
        live = {s.value: int(counts.get(s.value, 0)) for s in ImageStatus}
        out["counts"] = live
        # a cancelled job is closed (its unfinished images CANCELLED, its report written) by the
        # request or, for a large job, in the background: a client keeps refreshing until this is False
        out["closing"] = job.get("status") == JobStatus.CANCELLED.value and not job.get("reportKeys")
        if job.get("status") not in {s.value for s in contracts.TERMINAL_JOB_STATUSES}:
            now = datetime.now(UTC)
            out["eta"] = eta.eta_of_job(job, live, now, eta.map_concurrency()).to_dict(now)
        if job.get("notification"):
            out["notification"] = job["notification"]
        if job.get("cause"):
            out["cause"] = job["cause"]
        out["notify"] = job.get("notify") is not False
        if job.get("cancelledAt"):
            out["cancelledAt"] = job["cancelledAt"]
        if job.get("webhook"):
            out["webhook"] = job["webhook"]
        out["cost"] = costs.job_cost(job)
        reviewed = review.ReviewService.view(job)
        if reviewed:
            out["review"] = reviewed
        for link in ("retryOf", "retriedAs"):
            if job.get(link):
                out[link] = job[link]
        out["verdicts"] = {
            v.value: int(job.get(contracts.verdict_count_attribute(v)) or 0)
            for v in contracts.Verdict
            if v is not contracts.Verdict.NONE
        }
        return out

    def list_jobs(self, owner: str, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        page = self.store.list_jobs(owner, limit, cursor)
        return {"jobs": [self.summary(job) for job in page.items], "nextCursor": page.next_cursor}

    def _url(self, key: str) -> str:
        return str(
            self.s3.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=contracts.DOWNLOAD_URL_TTL_SECONDS
            )
        )

    def _image_view(self, image: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "imageId": image["imageId"],
            "imageRef": image.get("imageRef"),
            "name": image.get("name"),
            "status": image["status"],
            "errorCode": image.get("errorCode"),
            "cause": image.get("cause"),
            "labels": image.get("labels") or [],
            "prompt": image.get("prompt"),
            # the image's own background, if it overrides the job's (the server's S3 key left out)
            "background": {k: v for k, v in (image.get("background") or {}).items() if k != "key"} or None,
            "verdict": image.get("verdict"),
            "reviewDecision": image.get("reviewDecision"),
            "originalUrl": self._url(image["key"]),
            "outputs": [{**o, "url": self._url(o["key"])} for o in image.get("outputs") or []],
            # every attempt (automatic re-rolls): seed, outcome, score, cost, scorecards, kept
            "attempts": image.get("attempts") or [],
        }

    def job_view(self, owner: str, job_id: str, query: ImagesQuery | None = None) -> dict[str, Any]:
        """The job's summary and live counts, and one page of its images (in image-id order,
        optionally only those in one status) with presigned links for that page only. The page
        is cut short, with a cursor to the rest, before the answer would pass MAX_RESPONSE_BYTES;
        `limit=0` answers the summary alone (what a poller needs)."""
        query = query or ImagesQuery()
        job = self.get_job(owner, job_id)
        view = {**self.summary(job), "settings": job.get("settings")}
        if job["status"] == JobStatus.DELETING.value:
            # its images and files are going: the summary, the deletion's progress and an empty
            # page (clients that page through images stop at once); 404 once it is gone
            from chalicelib.workflow.deletion import deleting_view  # not on the polling path's cold start

            view["deletion"] = deleting_view(job)
            return view if query.limit == 0 else {**view, "images": [], "nextCursor": None}
        if job["status"] in contracts.TERMINAL_JOB_STATUSES and job.get("reportKeys"):
            view["reports"] = {fmt: self._url(key) for fmt, key in job["reportKeys"].items()}
        if job.get("reportRewrite"):  # a pick's report rewrite, in the background (chalicelib/delivery/rewrites.py)
            view["reportRewrite"] = {
                k: job["reportRewrite"][k] for k in ("status", "requestedAt", "lastError") if k in job["reportRewrite"]
            }
        if query.limit == 0:
            return view
        preparing = (JobStatus.SUBMITTED.value, JobStatus.CANCELLED.value)
        if job.get(contracts.JOB_IMAGES_PENDING_ATTRIBUTE) and job["status"] in preparing:
            # accepted, its image items still being written (chalicelib/workflow/starter.py): the counts say
            # how many there are; the page says they are being prepared rather than that there are none
            return {
                **view,
                "images": [],
                "nextCursor": None,
                "imagesPreparing": True,
                "message": f"the job's {int(job.get('imageCount') or 0):,} images are being prepared; "
                "they are listed here in a few seconds",
            }
        # a job from before its image items carried index keys is filtered as it was then
        indexed = bool(job.get(contracts.JOB_VIEW_KEYS_ATTRIBUTE))
        page = self.store.images_page(
            owner,
            job_id,
            limit=query.limit,
            cursor=query.cursor,
            status=query.status,
            verdict=query.verdict,
            indexed=indexed,
        )
        # room for the summary, the cursor and the JSON around the list
        room = contracts.MAX_RESPONSE_BYTES - len(json.dumps(view)) - 1_000
        images: list[dict[str, Any]] = []
        next_cursor = page.next_cursor
        for index, image in enumerate(page.items):
            entry = self._image_view(image)
            room -= len(json.dumps(entry)) + 2
            if room < 0 and images:
                next_cursor = self.store.images_cursor_after(
                    owner, job_id, page.items[index - 1], status=query.status, verdict=query.verdict, indexed=indexed
                )
                break
            images.append(entry)
        return {**view, "images": images, "nextCursor": next_cursor}

    def report_url(self, owner: str, job_id: str, fmt: str) -> dict[str, Any]:
        if fmt not in ("json", "csv"):
            raise BadRequest("format must be json or csv")
        job = self.get_job(owner, job_id)
        key = contracts.report_key(owner, job_id, fmt)
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if s3keys.absent(self.s3, self.bucket, key, exc):
                raise ReportNotReady(
                    f"job {job_id} is {job['status']} and has no report yet: "
                    "it is written when every image has finished"
                ) from exc
            raise service_failure(exc, f"could not read the report of job {job_id}") from exc
        return {"format": fmt, "url": self._url(key), "expiresIn": contracts.DOWNLOAD_URL_TTL_SECONDS}
