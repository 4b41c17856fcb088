"""Presigned S3 uploads to keys the server chooses: images never pass through the API."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from chalicelib.core import contracts
from chalicelib.core.errors import ValidationError
from chalicelib.core.validation import require_list, summarise


def _file_problems(item: Any) -> list[str]:
    """Why one requested file cannot be uploaded (empty when it can)."""
    if not isinstance(item, dict):
        return ["each file must be an object with name, contentType and size"]
    name = item.get("name")
    problems = []
    if not isinstance(name, str) or not 1 <= len(name) <= contracts.MAX_FILE_NAME_LENGTH:
        problems.append(f"name must be 1 to {contracts.MAX_FILE_NAME_LENGTH} characters")
    content_type = item.get("contentType")
    # a list or an object is not hashable: `in` alone would raise (a 500)
    if not isinstance(content_type, str) or content_type not in contracts.UPLOAD_CONTENT_TYPES:
        accepted = ", ".join(contracts.UPLOAD_CONTENT_TYPES)
        shown = content_type if isinstance(content_type, str) else type(content_type).__name__
        problems.append(f"content type {shown[:100]!r} is not accepted; use one of {accepted}")
    size = item.get("size")
    if not isinstance(size, int) or isinstance(size, bool):
        problems.append("size (in bytes) is required")
    elif not contracts.MIN_UPLOAD_BYTES <= size <= contracts.MAX_UPLOAD_BYTES:
        problems.append(
            f"size is {size:,} bytes; files must be {contracts.MIN_UPLOAD_BYTES} to {contracts.MAX_UPLOAD_BYTES:,} bytes"
        )
    unknown = set(item) - {"name", "contentType", "size"}
    if unknown:
        problems.append(f"unknown fields {sorted(unknown)}")
    return problems


def _rejection(index: int, item: Any, reasons: list[str]) -> dict[str, Any]:
    name = item.get("name") if isinstance(item, dict) else None
    shown = name if isinstance(name, str) and name else f"file {index}"
    # the file's own name says best which one it is; files[i] when it has none
    field = name if isinstance(name, str) and name else f"files[{index}]"
    return {"field": field, "index": index, "name": shown, "message": "; ".join(reasons), "reasons": reasons}


class UploadService:
    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket

    def create(self, owner: str, body: Any) -> dict[str, Any]:
        """Presigned POSTs for the files that can be uploaded, and each other file with its reasons.

        One bad file never costs the good ones: the answer lists `uploads` (with the index of each
        file in the request) and `rejected`. Only when no file can be uploaded is it an error."""
        from chalicelib.catalogue import schemas  # pydantic: imported by the routes that write only

        files = schemas.refuse_with(
            schemas.UploadRequest,
            body,
            "the upload request is not valid",
            lambda typed: require_list(typed, "files", 1, contracts.MAX_FILES_PER_UPLOAD_REQUEST),
        )
        rejected = []
        good = []
        for index, item in enumerate(files):
            reasons = _file_problems(item)
            if reasons:
                rejected.append(_rejection(index, item, reasons))
            else:
                good.append((index, item))
        if not good:
            raise ValidationError(
                summarise(f"none of the {len(files)} file(s) can be uploaded", rejected), details=rejected
            )
        upload_id = contracts.new_opaque_id()
        uploads = []
        for index, item in good:
            ext = contracts.UPLOAD_CONTENT_TYPES[item["contentType"]]
            ref = contracts.image_ref_of(upload_id, contracts.new_opaque_id(), ext)
            # the original name is metadata only (percent-encoded: S3 metadata is ASCII)
            original_name = quote(item["name"], safe="")
            presigned = self.s3.generate_presigned_post(
                Bucket=self.bucket,
                Key=contracts.upload_key(owner, ref),
                Fields={"Content-Type": item["contentType"], "x-amz-meta-original-name": original_name},
                Conditions=[
                    {"Content-Type": item["contentType"]},
                    {"x-amz-meta-original-name": original_name},
                    ["content-length-range", contracts.MIN_UPLOAD_BYTES, contracts.MAX_UPLOAD_BYTES],
                ],
                ExpiresIn=contracts.UPLOAD_URL_TTL_SECONDS,
            )
            uploads.append(
                {
                    "index": index,
                    "imageRef": ref,
                    "name": item["name"],
                    "url": presigned["url"],
                    "fields": presigned["fields"],
                }
            )
        return {
            "uploadId": upload_id,
            "expiresIn": contracts.UPLOAD_URL_TTL_SECONDS,
            "uploads": uploads,
            "rejected": rejected,
        }
