"""Archives on request: one zip per job and choice of contents, built once into the job's S3 prefix.

POST /jobs/{jobId}/archive asks for it; the same call (or GET) later answers with its progress
or a short-lived presigned link. A small job's zip is written within the request; a larger one
is built by the background worker (an `ARCHIVE` task, chalicelib/workflow/background.py), started
asynchronously, which streams every object into
an S3 multipart upload (memory stays at one part, whatever the job's size) and writes its
progress next to the zip. Nothing is ever rebuilt once the zip exists.

Limits it works within (docs/aws-notes.md#n57-archives-within-api-gateway-and-lambda-limits):
API Gateway ends a REST request after 29 s, so the API builds only zips of at most
SYNC_MAX_FILES files; Lambda runs at most 900 s, so the builder's progress that stops moving for
longer than that is a build that died, and the next request starts it again; S3 multipart parts
are 5 MiB to 5 GiB, at most 10,000 per upload, so PART_BYTES parts allow an 80 GiB zip.

Originals expire before results (BACKDROP_UPLOAD_RETENTION_DAYS, 30 days by default, against 90):
an archive with originals asked for after that leaves out each original S3 no longer has (404,
or 403 for a role without s3:ListBucket: docs/aws-notes.md#n79-an-expired-original-answers-403-or-404)
and lists it, in the zip (MISSING_ORIGINALS_NAME) and in the answer, instead of failing whole.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, Any, Final, cast

from botocore.exceptions import ClientError

from chalicelib.core import contracts
from chalicelib.core.config import UPLOAD_RETENTION_DAYS, retention_days
from chalicelib.core.contracts import ImageStatus
from chalicelib.core.errors import (
    ACCESS_DENIED_CODES,
    NOT_FOUND_CODES,
    BadRequest,
    Conflict,
    NotFound,
    client_error_code,
    service_failure,
)
from chalicelib.core.outputs import delivered_outputs
from chalicelib.core.validation import require_object
from chalicelib.store import s3keys
from chalicelib.store.background import BackgroundStart, BackgroundTask
from chalicelib.store.jobs import JobStore

SYNC_MAX_FILES: Final = 40  # ~40 results of a few MB each copy in a few seconds, far inside 29 s
LAMBDA_MAX_SECONDS: Final = 900  # Lambda's longest run: a build that stays silent longer has died
PART_BYTES: Final = 16 * 1024 * 1024  # S3 multipart: 5 MiB minimum (but the last), 10,000 parts at most
READ_BYTES: Final = 1024 * 1024
PROGRESS_EVERY_FILES: Final = 25
ORIGINALS_DIR: Final = "originals/"
MISSING_ORIGINALS_NAME: Final = "MISSING-ORIGINALS.txt"  # in the zip, when originals were left out
MAX_LISTED_MISSING: Final = 100  # names in the answer (the zip's file lists them all)


class ArchiveState:
    BUILDING = "BUILDING"
    READY = "READY"
    FAILED = "FAILED"
    NONE = "NONE"  # never asked for


# A zip entry's name is a relative path with "/" alone between its parts: no drive letter, no
# leading slash, no backslash (PKWARE APPNOTE 4.4.17, docs/aws-notes.md N88). A user's file name
# becomes one part of it, so it keeps none of these: unzipped, `..\\x` or `C:x` would land
# outside the folder on Windows. Also out: control characters (a CR/LF in a listing) and what
# Windows refuses in a name (<>:"|?*), so every entry unzips everywhere.
_NOT_IN_ENTRY = re.compile(r'[\x00-\x1f\x7f-\x9f<>:"/\\|?*]')
ENTRY_STEM_CHARS: Final = 120  # the name part of an entry; the rest (tag, variant, suffix) is short


def entry_stem(name: str, fallback: str) -> str:
    """The part of a user's file name that names its entries: the last part of the path (either
    separator), without its extension, unsafe characters replaced by "_", no leading or trailing
    dots or spaces (so never `..`); `fallback` when nothing is left."""
    last = re.split(r"[/\\]", name)[-1]
    stem = last.rsplit(".", 1)[0] if "." in last.strip(".") else last
    cleaned = "".join(
        "_" if _NOT_IN_ENTRY.match(c) or unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in stem
    )
    cleaned = cleaned.strip(" .")[:ENTRY_STEM_CHARS].strip(" .")
    return cleaned or fallback[:8] or "image"


def unique_entry_name(name: str, taken: set[str]) -> str:
    """`name`, or `name` with "-2", "-3", ... before its suffix when an entry of that name (in
    any letter case: Windows and macOS would overwrite one with the other) is in the zip already."""
    stem, dot, suffix = name.rpartition(".") if "." in PurePosixPath(name).name else (name, "", "")
    candidate, n = name, 1
    while candidate.casefold() in taken:
        n += 1
        candidate = f"{stem}-{n}{dot}{suffix}"
    taken.add(candidate.casefold())
    return candidate


@dataclass(frozen=True)
class ArchiveRequest:
    """What goes into the zip: always the results; optionally the originals and the report."""

    owner: str
    job_id: str
    originals: bool = False
    report: bool = False

    @property
    def kind(self) -> str:
        return contracts.archive_kind(self.originals, self.report)

    @property
    def zip_key(self) -> str:
        return contracts.archive_key(self.owner, self.job_id, self.kind)

    @property
    def progress_key(self) -> str:
        return contracts.archive_progress_key(self.owner, self.job_id, self.kind)

    def task(self, bucket: str) -> BackgroundTask:
        """The background worker's task that builds it."""
        options = {"originals": self.originals, "report": self.report}
        return BackgroundTask(contracts.BackgroundWork.ARCHIVE, self.job_id, self.owner, bucket, options)


def parse_archive_options(source: Mapping[str, Any] | None) -> tuple[bool, bool]:
    """`originals` and `report`, booleans (a body's) or "true"/"false" (a query string's)."""
    source = source or {}
    unknown = sorted(set(source) - {"originals", "report"})
    if unknown:
        message = f"unknown archive option {unknown[0][:40]!r}: use originals and report"
        raise BadRequest(message, details=[{"field": unknown[0], "message": message}])
    values = []
    for name in ("originals", "report"):
        value = source.get(name, False)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise BadRequest(f"{name} must be true or false", details=[{"field": name, "message": "true or false"}])
        values.append(value)
    return values[0], values[1]


def parse_archive_body(body: Any) -> tuple[bool, bool]:
    """POST /jobs/{jobId}/archive's body: a JSON object (schemas.ArchiveRequest) or none at all
    (the decoder gives `{}`); a list, null or a string is refused, naming the body."""
    from chalicelib.catalogue import schemas  # pydantic: imported by the routes that write only

    return schemas.refuse_with(
        schemas.ArchiveRequest,
        body,
        "the archive request is not valid",
        lambda typed: parse_archive_options(require_object(typed)),
    )


class _PartWriter:
    """A write-only file object that sends what it is given to S3 as multipart parts."""

    def __init__(self, s3: Any, bucket: str, key: str) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self.upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/zip")["UploadId"]
        self.parts: list[dict[str, Any]] = []
        self.buffer = bytearray()
        self.written = 0

    def write(self, data: bytes) -> int:
        self.buffer += data
        self.written += len(data)
        if len(self.buffer) >= PART_BYTES:
            self._send()
        return len(data)

    def tell(self) -> int:  # zipfile needs the offset; without seek() it writes data descriptors
        return self.written

    def flush(self) -> None:
        """Parts are sent when full: a flush must not send a part under S3's 5 MiB minimum."""

    def _send(self) -> None:
        number = len(self.parts) + 1
        answer = self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=bytes(self.buffer)
        )
        self.parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        self.buffer.clear()

    def complete(self) -> None:
        if self.buffer or not self.parts:
            self._send()
        self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )

    def abort(self) -> None:
        self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)


class ArchiveService:
    """Archives of one owner's jobs, given the S3 client, the bucket and the job store."""

    def __init__(self, s3: Any, bucket: str, store: JobStore, clock: Callable[[], float] = time.time) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.store = store
        self.clock = clock

    # ------------------------------------------------------------------ the API's side

    def _job(self, request: ArchiveRequest) -> dict[str, Any]:
        job = self.store.get_job(request.job_id)
        if not job or job.get("owner") != request.owner:
            raise NotFound(f"no job {request.job_id}")
        return job

    def _exists(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if s3keys.absent(self.s3, self.bucket, key, exc):  # a 403 on AWS: chalicelib/store/s3keys.py
                return None
            raise service_failure(exc, "could not look up the archive") from exc
        return head

    def _progress(self, request: ArchiveRequest) -> dict[str, Any] | None:
        try:
            raw = self.s3.get_object(Bucket=self.bucket, Key=request.progress_key)["Body"].read()
        except ClientError as exc:
            if s3keys.absent(self.s3, self.bucket, request.progress_key, exc):
                return None
            raise service_failure(exc, "could not read the archive's progress") from exc
        progress: dict[str, Any] = json.loads(raw)
        return progress

    def record_progress(self, request: ArchiveRequest, state: str, **fields: Any) -> None:
        """The progress object next to the zip (what GET answers while there is no zip)."""
        self._write_progress(request, state, **fields)

    def _write_progress(self, request: ArchiveRequest, state: str, **fields: Any) -> None:
        body = {"state": state, "updatedAt": self.clock(), **fields}
        self.s3.put_object(
            Bucket=self.bucket, Key=request.progress_key, Body=json.dumps(body).encode(), ContentType="application/json"
        )

    def _ready(self, request: ArchiveRequest, head: Mapping[str, Any]) -> dict[str, Any]:
        """The READY answer: the link, and the originals the zip had to leave out (if any)."""
        url = self.s3.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": request.zip_key,
                "ResponseContentDisposition": f'attachment; filename="backdrop-{request.job_id}-{request.kind}.zip"',
            },
            ExpiresIn=contracts.ARCHIVE_URL_TTL_SECONDS,
        )
        answer = {
            "state": ArchiveState.READY,
            "kind": request.kind,
            "url": url,
            "expiresIn": contracts.ARCHIVE_URL_TTL_SECONDS,
            "bytes": int(head.get("ContentLength") or 0),
        }
        if request.originals:
            progress = self._progress(request) or {}
            for field in ("missingOriginals", "missingOriginalsCount"):
                if field in progress:
                    answer[field] = progress[field]
        return answer

    def status(self, request: ArchiveRequest) -> dict[str, Any]:
        """GET: the zip's link when it exists, else its progress (NONE: never asked for)."""
        self._job(request)
        head = self._exists(request.zip_key)
        if head is not None:
            return self._ready(request, head)
        progress = self._progress(request)
        if progress is None:
            return {"state": ArchiveState.NONE, "kind": request.kind}
        if progress["state"] == ArchiveState.BUILDING and self._stalled(progress):
            return {"state": ArchiveState.FAILED, "kind": request.kind, "cause": "the build stopped; ask again"}
        return {**{k: v for k, v in progress.items() if k != "updatedAt"}, "kind": request.kind}

    def forget(self, owner: str, job_id: str) -> None:
        """Drop every zip of a job and its progress (what an image delivers changed: the owner
        picked another variant): the next request builds it again. Deleting a missing key is no error."""
        keys = [
            key
            for originals in (False, True)
            for report in (False, True)
            for key in (
                ArchiveRequest(owner, job_id, originals, report).zip_key,
                ArchiveRequest(owner, job_id, originals, report).progress_key,
            )
        ]
        try:
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
        except ClientError as exc:
            raise service_failure(exc, f"could not drop the archives of job {job_id}") from exc

    def _stalled(self, progress: Mapping[str, Any]) -> bool:
        return self.clock() - float(progress.get("updatedAt") or 0) > LAMBDA_MAX_SECONDS + 60

    def request(self, request: ArchiveRequest, start_build: BackgroundStart) -> dict[str, Any]:
        """POST: the zip's link if it was built; else build it now (small) or start its build
        (`start_build(task)`: chalicelib/workflow/background.py, large) and answer its progress."""
        job = self._job(request)
        if job["status"] == contracts.JobStatus.DELETING.value:
            raise Conflict(f"job {request.job_id} is being deleted; there is nothing to put in an archive")
        if job["status"] not in contracts.TERMINAL_JOB_STATUSES:
            raise Conflict(f"job {request.job_id} is still {job['status']}; ask for its archive when it has finished")
        succeeded = int((job.get("counts") or {}).get(ImageStatus.SUCCEEDED.value, 0))
        if not succeeded and not request.originals:
            raise Conflict(f"job {request.job_id} has no results to put in an archive")
        head = self._exists(request.zip_key)
        if head is not None:
            return self._ready(request, head)
        progress = self._progress(request)
        if progress and progress["state"] == ArchiveState.BUILDING and not self._stalled(progress):
            return {**{k: v for k, v in progress.items() if k != "updatedAt"}, "kind": request.kind}
        files = succeeded + (int(job.get("imageCount") or 0) if request.originals else 0)
        if files <= SYNC_MAX_FILES:
            try:
                self.build(request)
            except ClientError as exc:
                raise service_failure(exc, f"could not build the archive of job {request.job_id}") from exc
            head = self._exists(request.zip_key)
            if head is None:  # build() raised if it failed; a missing zip here is S3 disagreeing
                raise Conflict("the archive was written but cannot be found yet; ask again")
            return self._ready(request, head)
        # the BUILDING progress is the build's claim: a request meanwhile answers it
        self._write_progress(request, ArchiveState.BUILDING, done=0, total=files)
        handoff = start_build(request.task(self.bucket))
        if handoff.error is not None:  # recorded as the progress: the next request starts it again
            return {
                "state": ArchiveState.FAILED,
                "kind": request.kind,
                "cause": "the build could not be started; ask again",
            }
        return {"state": ArchiveState.BUILDING, "kind": request.kind, "done": 0, "total": files}

    # ------------------------------------------------------------------ the builder

    def _entries(self, request: ArchiveRequest, job: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        """(name in the zip, S3 key) of everything that goes in, in a stable order; each name
        once (entry_name)."""
        taken: set[str] = set()
        for name, key in self._named_entries(request, job):
            yield unique_entry_name(name, taken), key

    def _named_entries(self, request: ArchiveRequest, job: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        for image in self.store.images(request.job_id):
            stem = entry_stem(str(image.get("name") or ""), str(image["imageId"]))
            tag = f"{stem}-{image['imageId'][:8]}"
            if (
                image["status"] == ImageStatus.SUCCEEDED.value
                and image.get("reviewDecision") != contracts.ReviewDecision.REJECTED
            ):
                for output in delivered_outputs(image):  # the variant picked (or the best)
                    suffix = PurePosixPath(output["key"]).suffix
                    yield f"results/{tag}-{output['variant']}{suffix}", output["key"]
            if request.originals:
                yield f"{ORIGINALS_DIR}{tag}{PurePosixPath(image['key']).suffix}", image["key"]
        if request.report:
            for fmt, key in sorted((job.get("reportKeys") or {}).items()):
                yield f"report.{fmt}", key

    def build(self, request: ArchiveRequest) -> dict[str, Any]:
        """Write the zip (ZIP_STORED: photos are compressed already) and its progress."""
        job = self._job(request)
        entries = list(self._entries(request, job))
        missing: list[str] = []  # originals S3 no longer has (expired before the results)
        writer = _PartWriter(self.s3, self.bucket, request.zip_key)
        try:
            with zipfile.ZipFile(cast(IO[bytes], writer), "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                stamp = time.gmtime(self.clock())[:6]
                for done, (name, key) in enumerate(entries, start=1):
                    body = self._original_or_none(name, key)
                    if body is None:
                        missing.append(name)
                        continue
                    with archive.open(zipfile.ZipInfo(name, stamp), "w", force_zip64=True) as out:
                        while chunk := body.read(READ_BYTES):
                            out.write(chunk)
                    if done % PROGRESS_EVERY_FILES == 0:
                        self._write_progress(request, ArchiveState.BUILDING, done=done, total=len(entries))
                if missing:
                    archive.writestr(zipfile.ZipInfo(MISSING_ORIGINALS_NAME, stamp), self._missing_note(missing))
            writer.complete()
        except Exception as exc:
            writer.abort()
            self._write_progress(request, ArchiveState.FAILED, cause=f"{type(exc).__name__}: {exc}"[:300])
            raise
        left_out = {"missingOriginals": missing[:MAX_LISTED_MISSING], "missingOriginalsCount": len(missing)}
        self._write_progress(
            request, ArchiveState.READY, done=len(entries), total=len(entries), **(left_out if missing else {})
        )
        return {
            "state": ArchiveState.READY,
            "files": len(entries) - len(missing),
            "bytes": writer.written,
            **(left_out if missing else {}),
        }

    def _original_or_none(self, name: str, key: str) -> Any:
        """The object's body; None for an original S3 no longer has. S3 answers 404 for a missing
        key only to a caller allowed s3:ListBucket, 403 otherwise (the builder has no ListBucket).
        A missing result, report or any other error still fails the build."""
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            if name.startswith(ORIGINALS_DIR) and client_error_code(exc) in NOT_FOUND_CODES | ACCESS_DENIED_CODES:
                return None
            raise

    @staticmethod
    def _missing_note(missing: list[str]) -> str:
        days = retention_days(UPLOAD_RETENTION_DAYS)
        return (
            f"{len(missing)} original(s) could not be added: S3 no longer has them. Uploaded originals are "
            f"kept {days} days (BACKDROP_UPLOAD_RETENTION_DAYS), results longer; the results are in this zip.\n"
            + "".join(f"{name}\n" for name in missing)
        )
