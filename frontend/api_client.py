"""A small, typed client for Backdrop's HTTP API, shared by the Streamlit app, the CLI and the demo.

It never holds AWS credentials: it signs in to Cognito (USER_PASSWORD_AUTH, with SECRET_HASH
when the app client has a secret), sends the ID token, and uploads images straight to S3 through
the presigned POSTs the API hands out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import mimetypes
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from chalicelib.core import contracts

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
CONTENT_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".avif": "image/avif",
}
# POST /labels takes at most this many refs per request
LABEL_REFS_PER_REQUEST = contracts.MAX_LABEL_REFS_PER_REQUEST
UNREACHABLE = "UNREACHABLE"
# after each file: (files done, files in all, the file's name)
UploadProgress = Callable[[int, int, str], None]


# Cognito's refusals of a sign-in, in words for the person signing in (no exception names)
COGNITO_WORDS = {
    "NotAuthorizedException": "the email or the password is not right",
    "UserNotFoundException": "the email or the password is not right",
    "PasswordResetRequiredException": "your password must be reset first; ask your administrator",
    "UserNotConfirmedException": "your account is not confirmed yet; ask your administrator",
    "TooManyRequestsException": "too many attempts; wait a minute and try again",
    "LimitExceededException": "too many attempts; wait a minute and try again",
}


def _cognito_failure(exc: Exception, what: str) -> ApiError:
    """A botocore error of a Cognito call as one ApiError: cannot connect, or Cognito's refusal."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or type(exc).__name__)
        if code in COGNITO_WORDS:
            return ApiError(401, "SIGN_IN_FAILED", f"{what}: {COGNITO_WORDS[code]}")
        return ApiError(401, "SIGN_IN_FAILED", f"{what}: {code}: {error.get('Message', '')}".rstrip(": "))
    if isinstance(exc, BotoCoreError):  # EndpointConnectionError, ConnectTimeoutError, NoRegionError, ...
        return ApiError(0, UNREACHABLE, f"{what}: cannot reach Cognito ({exc})")
    return ApiError(401, "SIGN_IN_FAILED", f"{what}: {type(exc).__name__}: {exc}")


def _code(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return ""
    return str(data.get("code", "")) if isinstance(data, dict) else ""


class ApiError(Exception):
    """An error answer of the API, with its stable code and the server's message."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


@dataclass
class Tokens:
    id_token: str
    refresh_token: str | None
    expires_at: float


@dataclass
class CognitoLogin:
    """Cognito user-pool sign-in; refreshes the ID token before it expires."""

    client_id: str
    region: str = "us-east-1"
    client_secret: str | None = None
    endpoint_url: str | None = None
    clock: Callable[[], float] = time.time
    tokens: Tokens | None = None
    username: str | None = None

    def _client(self) -> Any:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config

        # InitiateAuth is an unauthenticated call: no AWS credentials on the client's machine
        return boto3.client(
            "cognito-idp",
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            config=Config(signature_version=UNSIGNED),
        )

    def _secret_hash(self, username: str) -> dict[str, str]:
        if not self.client_secret:
            return {}
        digest = hmac.new(self.client_secret.encode(), (username + self.client_id).encode(), hashlib.sha256).digest()
        return {"SECRET_HASH": base64.b64encode(digest).decode()}

    def sign_in(self, username: str, password: str) -> Tokens:
        try:
            answer = self._client().initiate_auth(
                ClientId=self.client_id,
                AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": username, "PASSWORD": password, **self._secret_hash(username)},
            )
        except Exception as exc:  # wrong password, unknown user, Cognito unreachable, ...
            raise _cognito_failure(exc, "sign-in failed") from exc
        if "AuthenticationResult" not in answer:
            raise ApiError(
                401,
                "SIGN_IN_FAILED",
                f"Cognito asks for {answer.get('ChallengeName')}; finish it in the hosted UI first",
            )
        self.username = username
        self.tokens = self._tokens(answer["AuthenticationResult"])
        return self.tokens

    def _tokens(self, result: dict[str, Any], refresh: str | None = None) -> Tokens:
        return Tokens(
            result["IdToken"], result.get("RefreshToken", refresh), self.clock() + int(result.get("ExpiresIn", 3600))
        )

    def id_token(self) -> str:
        if self.tokens is None:
            raise ApiError(401, "UNAUTHORIZED", "sign in first")
        if self.tokens.expires_at - self.clock() < 120 and self.tokens.refresh_token:
            params = {"REFRESH_TOKEN": self.tokens.refresh_token, **self._secret_hash(self.username or "")}
            try:
                answer = self._client().initiate_auth(
                    ClientId=self.client_id, AuthFlow="REFRESH_TOKEN_AUTH", AuthParameters=params
                )
            except Exception as exc:  # a revoked refresh token, another user pool, Cognito unreachable
                raise _cognito_failure(exc, "the session could not be renewed; sign in again") from exc
            self.tokens = self._tokens(answer["AuthenticationResult"], self.tokens.refresh_token)
        return self.tokens.id_token


@dataclass
class UploadOutcome:
    """What a batch upload did, file by file: one bad file never stops the others."""

    uploaded: list[dict[str, str]] = field(default_factory=list)  # [{imageRef, name}], in the order given
    rejected: list[dict[str, str]] = field(default_factory=list)  # [{name, message}]: every file left out, and why
    positions: list[int] = field(default_factory=list)  # where each uploaded file was in the items given

    @property
    def refs(self) -> list[str]:
        return [u["imageRef"] for u in self.uploaded]


def _per_file_rejections(exc: ApiError) -> list[dict[str, Any]] | None:
    """The per-file reasons of a POST /uploads that accepted none of its files, else None."""
    details = exc.details
    per_file = isinstance(details, list) and all(
        isinstance(d, dict) and isinstance(d.get("index"), int) for d in details
    )
    return details if exc.code == contracts.ErrorCode.VALIDATION_FAILED and details and per_file else None


def _reason(exc: BaseException) -> str:
    """The last, most specific line of a requests/urllib3 error (no nested reprs)."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "Connection reset"):
        if marker in text:
            return marker.lower()
    return text[:200]


@dataclass
class BackdropClient:
    base_url: str
    token: Callable[[], str]
    session: requests.Session = field(default_factory=requests.Session)
    max_attempts: int = 4
    sleep: Callable[[float], None] = time.sleep
    timeout_s: float = 30.0

    # ---------------------------------------------------------------- transport

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        url = self.base_url.rstrip("/") + path
        for attempt in range(1, self.max_attempts + 1):
            sent = {"Authorization": self.token(), "Content-Type": "application/json", **(headers or {})}
            try:
                response = self.session.request(
                    method, url, json=body, params=params, headers=sent, timeout=self.timeout_s
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt == self.max_attempts:
                    raise ApiError(
                        0, UNREACHABLE, f"cannot reach the Backdrop API at {self.base_url}: {_reason(exc)}"
                    ) from exc
            except requests.RequestException as exc:  # an invalid URL, too many redirects, ...
                raise ApiError(0, UNREACHABLE, f"cannot call the Backdrop API at {self.base_url}: {exc}") from exc
            else:
                if not self._retryable(response) or attempt == self.max_attempts:
                    return self._result(response)
            self.sleep(random.uniform(0, min(8.0, 0.5 * 2**attempt)))  # exponential backoff, full jitter
        raise AssertionError("unreachable")

    @staticmethod
    def _retryable(response: requests.Response) -> bool:
        if response.status_code in RETRY_STATUSES:
            return True
        # a repeat of a POST /jobs whose first attempt is still running: ask again shortly
        return response.status_code == 409 and _code(response) == contracts.ErrorCode.REQUEST_IN_PROGRESS

    @staticmethod
    def _result(response: requests.Response) -> Any:
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            if isinstance(data, dict) and "code" in data:
                raise ApiError(response.status_code, data["code"], data.get("message", ""), data.get("details"))
            message = data.get("message") if isinstance(data, dict) else response.text[:200]
            raise ApiError(response.status_code, f"HTTP_{response.status_code}", message or response.reason)
        return data

    # ---------------------------------------------------------------- routes

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/health")

    def models(self) -> dict[str, Any]:
        return self.request("GET", "/models")

    def presets(self) -> dict[str, Any]:
        return self.request("GET", "/presets")

    def create_uploads(self, files: list[dict[str, Any]]) -> dict[str, Any]:
        return self.request("POST", "/uploads", {"files": files})

    def upload_bytes(
        self, items: Iterable[tuple[str, bytes, str]], progress: UploadProgress | None = None
    ) -> UploadOutcome:
        """Upload (name, data, content type) triples straight to S3; the API judges every file and
        each one it refuses, or S3 refuses, is listed with its reason while the others go on."""
        return self._upload([(name, len(data), kind, lambda d=data: d) for name, data, kind in items], progress)

    def _upload(
        self, items: list[tuple[str, int, str, Callable[[], bytes]]], progress: UploadProgress | None
    ) -> UploadOutcome:
        """(name, size, content type, read) per file: each file is read only when it is sent."""
        outcome = UploadOutcome()
        done = 0
        for start in range(0, len(items), contracts.MAX_FILES_PER_UPLOAD_REQUEST):
            chunk = items[start : start + contracts.MAX_FILES_PER_UPLOAD_REQUEST]
            try:
                grant = self.create_uploads([{"name": n, "contentType": t, "size": size} for n, size, t, _ in chunk])
            except ApiError as exc:
                rejections = _per_file_rejections(exc)
                if rejections is None:
                    raise
                grant = {"uploads": [], "rejected": rejections}
            for rejection in grant.get("rejected", []):
                outcome.rejected.append({"name": chunk[rejection["index"]][0], "message": rejection["message"]})
                done += 1
                if progress:
                    progress(done, len(items), chunk[rejection["index"]][0])
            for upload in grant["uploads"]:
                name, _, content_type, read = chunk[upload["index"]]
                try:
                    data = read()
                except OSError as exc:  # gone or unreadable since it was listed
                    outcome.rejected.append({"name": name, "message": f"cannot be read: {exc.strerror or exc}"})
                else:
                    self._post_file(upload, name, data, content_type, outcome, start)
                done += 1
                if progress:
                    progress(done, len(items), name)
        return outcome

    def _post_file(
        self, upload: dict[str, Any], name: str, data: bytes, content_type: str, outcome: UploadOutcome, start: int
    ) -> None:
        try:
            posted = self.session.post(
                upload["url"], data=upload["fields"], files={"file": (name, data, content_type)}, timeout=120
            )
        except requests.ConnectionError as exc:  # S3 itself is unreachable: so is every other file
            raise ApiError(0, UNREACHABLE, f"cannot reach S3 at {upload['url']}: {_reason(exc)}") from exc
        except requests.RequestException as exc:
            outcome.rejected.append({"name": name, "message": f"the upload to S3 failed: {_reason(exc)}"})
            return
        if posted.status_code >= 300:
            outcome.rejected.append(
                {"name": name, "message": f"S3 refused the upload ({posted.status_code}): {posted.text[:300]}"}
            )
        else:
            outcome.uploaded.append({"imageRef": upload["imageRef"], "name": name})
            outcome.positions.append(start + upload["index"])

    def upload_files(self, paths: Iterable[Path], progress: UploadProgress | None = None) -> UploadOutcome:
        """Upload files from disk, reading each only when it is sent; a file that cannot be read
        is listed like any other refusal."""
        items: list[tuple[str, int, str, Callable[[], bytes]]] = []
        unreadable = []
        readable_positions = []
        for position, path in enumerate(paths):
            try:
                if not path.is_file():
                    raise IsADirectoryError(21, "not a file") if path.is_dir() else FileNotFoundError(2, "no such file")
                size = path.stat().st_size
            except OSError as exc:
                unreadable.append({"name": str(path), "message": f"cannot be read: {exc.strerror or exc}"})
                continue
            readable_positions.append(position)
            # the API decides what is accepted; the type is only named here
            content_type = (
                CONTENT_TYPES.get(path.suffix.lower())
                or mimetypes.guess_type(path.name)[0]
                or "application/octet-stream"
            )
            items.append((path.name, size, content_type, path.read_bytes))
        outcome = self._upload(items, progress) if items else UploadOutcome()
        outcome.rejected[:0] = unreadable
        outcome.positions = [readable_positions[i] for i in outcome.positions]  # positions in `paths`
        return outcome

    def label_results(self, image_refs: list[str], max_rounds: int = 30) -> dict[str, Any]:
        """{"labels": {ref: [...]}, "unavailable": {ref: {code, message}}} for every ref, however
        many: up to 1,000 refs per request, asking again for those the API answered as pending
        (still being detected, or past one answer's size)."""
        found: dict[str, Any] = {"labels": {}, "unavailable": {}}
        wanted = list(dict.fromkeys(image_refs))
        for _ in range(max_rounds):
            if not wanted:
                return found
            pending: list[str] = []
            for start in range(0, len(wanted), LABEL_REFS_PER_REQUEST):
                chunk = wanted[start : start + LABEL_REFS_PER_REQUEST]
                answer = self.request("POST", "/labels", {"imageRefs": chunk})
                found["labels"].update(answer["labels"])
                found["unavailable"].update(answer.get("unavailable", {}))
                pending += answer.get("pending", [])
            if len(pending) == len(wanted):  # nothing answered this round: give detection a moment
                self.sleep(1.0)
            wanted = pending
        raise ApiError(0, "TIMEOUT", f"labels of {len(wanted)} image(s) were still pending after {max_rounds} rounds")

    def labels(self, image_refs: list[str], max_rounds: int = 30) -> dict[str, list[dict[str, Any]]]:
        return dict(self.label_results(image_refs, max_rounds)["labels"])

    def submit(self, job: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """POST /jobs with an Idempotency-Key (a new one unless given), so the retries of a
        request that timed out answer the same job instead of starting a second one."""
        key = idempotency_key or str(uuid.uuid4())
        return self.request("POST", "/jobs", job, headers={"Idempotency-Key": key})

    def jobs(self, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return self.request("GET", "/jobs", params=params)

    def job(
        self,
        job_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        status: str | None = None,
        verdict: str | None = None,
    ) -> dict[str, Any]:
        """The job's summary and live counts with one page of its images (`limit` 1-100; 0: the
        summary alone), from `cursor`, optionally only images in `status` and with `verdict`."""
        params: dict[str, Any] = {}
        for name, value in (("limit", limit), ("cursor", cursor), ("status", status), ("verdict", verdict)):
            if value is not None:
                params[name] = value
        return self.request("GET", f"/jobs/{job_id}", params=params or None)

    def job_summary(self, job_id: str) -> dict[str, Any]:
        """Status and counts without any image: what a poller needs."""
        return self.job(job_id, limit=0)

    def job_images(self, job_id: str, *, status: str | None = None, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every image of the job (or every one in `status`), page by page."""
        cursor: str | None = None
        while True:
            page = self.job(job_id, limit=page_size, cursor=cursor, status=status)
            yield from page["images"]
            cursor = page.get("nextCursor")
            if not cursor:
                return

    def job_with_images(self, job_id: str, *, status: str | None = None) -> dict[str, Any]:
        """The summary with every image (or every one in `status`), gathered page by page."""
        return {**self.job_summary(job_id), "images": list(self.job_images(job_id, status=status))}

    def report_url(self, job_id: str, fmt: str = "json") -> str:
        return self.request("GET", f"/jobs/{job_id}/report", params={"format": fmt})["url"]

    def archive(self, job_id: str, *, originals: bool = False, report: bool = False) -> dict[str, Any]:
        """Ask for the job's zip: READY with a short-lived link, or BUILDING with its progress."""
        return self.request("POST", f"/jobs/{job_id}/archive", {"originals": originals, "report": report})

    def archive_status(self, job_id: str, *, originals: bool = False, report: bool = False) -> dict[str, Any]:
        params = {"originals": str(originals).lower(), "report": str(report).lower()}
        return self.request("GET", f"/jobs/{job_id}/archive", params=params)

    def review(self, job_id: str, decisions: dict[str, str]) -> dict[str, Any]:
        """Record APPROVED / REJECTED per image id of a job waiting for its owner's review."""
        return self.request("POST", f"/jobs/{job_id}/review", {"decisions": decisions})

    def approve(self, job_id: str) -> dict[str, Any]:
        """Release a job waiting for review: its report and email follow, rejected results left out."""
        return self.request("POST", f"/jobs/{job_id}/review/approve", {})

    def pick(self, job_id: str, image_id: str, variant: int) -> dict[str, Any]:
        """Deliver variant `variant` of an image (the archive and report follow)."""
        return self.request("POST", f"/jobs/{job_id}/images/{image_id}/pick", {"variant": variant})

    def regenerate(
        self, job_id: str, image_id: str, *, seed: int | None = None, prompt: str | None = None
    ) -> dict[str, Any]:
        """One more variant of an image, made by a linked one-photo job (answered: its jobId)."""
        body: dict[str, Any] = {}
        if seed is not None:
            body["seed"] = seed
        if prompt is not None:
            body["prompt"] = prompt
        return self.request("POST", f"/jobs/{job_id}/images/{image_id}/regenerate", body)

    def retry(self, job_id: str) -> dict[str, Any]:
        return self.request("POST", f"/jobs/{job_id}/retry", {})

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self.request("POST", f"/jobs/{job_id}/cancel")

    def delete(self, job_id: str, *, originals: bool = False) -> dict[str, Any]:
        return self.request("DELETE", f"/jobs/{job_id}", params={"originals": "true" if originals else "false"})

    def webhook_secret(self, *, rotate: bool = False) -> dict[str, Any]:
        if rotate:
            return self.request("POST", "/webhooks/secret/rotate")
        return self.request("GET", "/webhooks/secret")

    def wait(
        self,
        job_id: str,
        *,
        poll_s: float = 1.0,
        timeout_s: float = 3600,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll the job's summary (never its images) until it is finished; `progress` sees every
        summary; returns the last one."""
        deadline = time.monotonic() + timeout_s
        while True:
            view = self.job_summary(job_id)
            if progress:
                progress(view)
            if view["status"] in {s.value for s in contracts.TERMINAL_JOB_STATUSES}:
                return view
            if time.monotonic() > deadline:
                raise ApiError(0, "TIMEOUT", f"job {job_id} is still {view['status']} after {timeout_s:.0f} s")
            self.sleep(poll_s)

    def download(self, url: str) -> bytes:
        try:
            response = self.session.get(url, timeout=120)
        except requests.RequestException as exc:
            raise ApiError(0, UNREACHABLE, f"could not download {url.split('?')[0]}: {_reason(exc)}") from exc
        if response.status_code >= 300:
            raise ApiError(response.status_code, "DOWNLOAD_FAILED", f"could not download {url.split('?')[0]}")
        return response.content
