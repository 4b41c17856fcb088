"""Presigned S3 uploads to keys the server chooses: images never pass through the API."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from chalicelib import contracts
from chalicelib.validation import Problems, require_list


def _file_problems(index: int, item: Any, problems: Problems) -> None:
    if not isinstance(item, dict):
        problems.add(f"files[{index}]", "each file must be an object with name, contentType and size", index=index)
        return
    name = item.get("name")
    shown = name if isinstance(name, str) else f"file {index}"

    def add(message: str) -> None:
        # the file's own name says best which one it is; files[i] when it has none
        problems.add(shown or f"files[{index}]", message, index=index, name=shown)

    if not isinstance(name, str) or not 1 <= len(name) <= contracts.MAX_FILE_NAME_LENGTH:
        add(f"name must be 1 to {contracts.MAX_FILE_NAME_LENGTH} characters")
    content_type = item.get("contentType")
    if content_type not in contracts.UPLOAD_CONTENT_TYPES:
        accepted = ", ".join(contracts.UPLOAD_CONTENT_TYPES)
        add(f"content type {content_type!r} is not accepted; use one of {accepted}")
    size = item.get("size")
    if not isinstance(size, int) or isinstance(size, bool):
        add("size (in bytes) is required")
    elif not contracts.MIN_UPLOAD_BYTES <= size <= contracts.MAX_UPLOAD_BYTES:
        add(
            f"size is {size:,} bytes; files must be {contracts.MIN_UPLOAD_BYTES} to {contracts.MAX_UPLOAD_BYTES:,} bytes"
        )
    unknown = set(item) - {"name", "contentType", "size"}
    if unknown:
        add(f"unknown fields {sorted(unknown)}")


class UploadService:
    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket

    def create(self, owner: str, body: Any) -> dict[str, Any]:
        files = require_list(body, "files", 1, contracts.MAX_FILES_PER_UPLOAD_REQUEST)
        problems = Problems("some files cannot be uploaded")
        for index, item in enumerate(files):
            _file_problems(index, item, problems)
        problems.raise_if_any()
        upload_id = contracts.new_opaque_id()
        uploads = []
        for item in files:
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
                {"imageRef": ref, "name": item["name"], "url": presigned["url"], "fields": presigned["fields"]}
            )
        return {"uploadId": upload_id, "expiresIn": contracts.UPLOAD_URL_TTL_SECONDS, "uploads": uploads}
