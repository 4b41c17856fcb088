"""Work handed to a background run (`pk = BACKGROUND`, for the reconciler's sweep), the one shape
of a piece of background work (`BackgroundTask`, the worker's event) and report rewrites.

The recipes that start, run and restart each kind are in chalicelib/workflow/background.py; what
is here is what the layers below it (delivery) need to hand work over without importing it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from chalicelib.core import contracts
from chalicelib.core.contracts import ClosingStatus
from chalicelib.core.errors import (
    CONDITION_FAILED,
    StorageError,
    client_error_code,
)
from chalicelib.store.base import StoreBase
from chalicelib.store.items import plain


@dataclass(frozen=True)
class BackgroundTask:
    """One piece of background work: its kind, its job, and the kind's own options (an archive's
    contents). Its event is what the background worker function is invoked with."""

    kind: contracts.BackgroundWork
    job_id: str
    owner: str
    bucket: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_event(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "jobId": self.job_id,
            "owner": self.owner,
            "bucket": self.bucket,
            "options": dict(self.options),
        }

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> BackgroundTask:
        """The worker's event; ValueError for one this code did not write."""
        job_id, owner = str(event.get("jobId") or ""), str(event.get("owner") or "")
        if not contracts.is_job_id(job_id) or not contracts.OWNER_RE.match(owner):
            raise ValueError("not a background task")
        options = event.get("options") or {}
        if not isinstance(options, Mapping):
            raise ValueError("not a background task")
        kind = contracts.BackgroundWork(str(event.get("kind")))
        return cls(kind, job_id, owner, str(event.get("bucket") or ""), dict(options))


@dataclass(frozen=True)
class Handoff:
    """How a start went: `claimed` False when a run already on it will see this request (nothing
    started); `error` when the start failed (recorded on the job: the sweep starts it again)."""

    claimed: bool
    error: str | None = None

    @property
    def started(self) -> bool:
        return self.claimed and self.error is None


# Notes, claims and starts a piece of background work (chalicelib/workflow/background.py `Background.start`).
BackgroundStart = Callable[[BackgroundTask], Handoff]


class BackgroundWork(StoreBase):
    """Background work notes and report rewrites."""

    def request_report_rewrite(self, job_id: str, requested_at: str, stale_before: str) -> bool:
        """A pick on a large finished job: its report must be written again. Marks the job's
        `reportRewrite` with `requested_at`; True when the caller must start the rewriter (none is
        running, its start failed, or it has not moved since `stale_before`), False when a running
        rewriter will see the newer request when it finishes (chalicelib/delivery/rewrites.py)."""
        for _ in range(3):  # the running rewriter may finish between the two writes
            claimed = self._conditional_update(
                self._job_key(job_id),
                "SET reportRewrite = :claim",
                "attribute_exists(pk) AND (attribute_not_exists(reportRewrite) OR reportRewrite.#s <> :started"
                " OR reportRewrite.since < :stale)",
                {
                    ":claim": {
                        "status": ClosingStatus.STARTED.value,
                        "requestedAt": requested_at,
                        "since": requested_at,
                    },
                    ":started": ClosingStatus.STARTED.value,
                    ":stale": stale_before,
                },
            )
            if claimed:
                return True
            if self._conditional_update(
                self._job_key(job_id),
                "SET reportRewrite.requestedAt = :at",
                "reportRewrite.#s = :started",
                {":at": requested_at, ":started": ClosingStatus.STARTED.value},
            ):
                return False
        raise StorageError(f"the report rewrite of job {job_id} could not be recorded")

    def record_report_rewrite(self, job_id: str, **fields: str) -> bool:
        """How the rewrite goes (`status`, `since`, `lastError`); False when none is pending."""
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":v{i}": value for i, value in enumerate(fields.values())}
        try:
            self._update(
                Key=self._job_key(job_id),
                UpdateExpression="SET " + ", ".join(f"reportRewrite.#f{i} = :v{i}" for i in range(len(fields))),
                ConditionExpression="attribute_exists(reportRewrite)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if client_error_code(exc) != CONDITION_FAILED:
                raise
            return False
        return True

    def report_rewrite_done(self, job_id: str, requested_at: str) -> bool:
        """The report was written from a reading made after the request of `requested_at`: the
        mark goes, unless a newer pick asked again meanwhile (False: write it once more)."""
        return self._conditional_update(
            self._job_key(job_id), "REMOVE reportRewrite", "reportRewrite.requestedAt = :at", {":at": requested_at}
        )

    @staticmethod
    def _work_key(kind: contracts.BackgroundWork, job_id: str) -> dict[str, str]:
        return {"pk": contracts.BACKGROUND_WORK_PK, "sk": contracts.background_work_sk(kind, job_id)}

    def note_background_work(self, kind: contracts.BackgroundWork, job_id: str, owner: str, bucket: str) -> None:
        """Work about to be handed to a background run: kept until it is done (rewriting it is harmless)."""
        self.table.put_item(
            Item={
                **self._work_key(kind, job_id),
                "kind": kind.value,
                "jobId": job_id,
                "owner": owner,
                "bucket": bucket,
                "notedAt": contracts.utc_now_iso(),
            }
        )

    def background_work(self) -> list[dict[str, Any]]:
        """Every noted piece of background work not yet marked done."""
        return [plain(i) for i in self._query_all(KeyConditionExpression=Key("pk").eq(contracts.BACKGROUND_WORK_PK))]

    def background_work_done(self, kind: contracts.BackgroundWork, job_id: str) -> None:
        self.table.delete_item(Key=self._work_key(kind, job_id))
