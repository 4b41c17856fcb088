"""Whether S3 objects exist, told by LIST rather than by a 404.

S3 answers a GET or HEAD of a missing key with 403 AccessDenied, not 404, to a caller without
s3:ListBucket on the bucket (docs/aws-notes.md#n63-s3-answers-403-for-a-missing-key-without-listbucket),
and Backdrop's roles hold ListBucket only under a prefix (an `s3:prefix` condition, which a GET does
not carry). So code that must tell "absent" from "refused" lists the key's prefix instead; the
caller's role needs the matching ListBucket grant (chalicelib/core/functions.py).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from chalicelib.core.errors import client_error_code, is_not_found


def keys_under(s3: Any, bucket: str, prefix: str) -> set[str]:
    """Every key under `prefix` (all pages)."""
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.update(obj["Key"] for obj in page.get("Contents", []))
    return keys


def exists(s3: Any, bucket: str, key: str) -> bool:
    """One LIST of the key itself as the prefix: the key, if it exists, sorts first."""
    page = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    return any(obj["Key"] == key for obj in page.get("Contents", []))


def absent(s3: Any, bucket: str, key: str, exc: Exception) -> bool:
    """Whether a failed GET/HEAD of `key` means the object is not there: a 404, or a 403 that a
    LIST of the key confirms (S3's answer for a missing key to a caller that may not list the
    whole bucket). Costs a LIST only when the object is missing or refused; the caller's role
    needs ListBucket on the key's prefix."""
    if is_not_found(exc):
        return True
    if client_error_code(exc) not in ("AccessDenied", "403", "Forbidden"):
        return False
    try:
        return not exists(s3, bucket, key)
    except ClientError:  # may not list either: a refusal, not an absence
        return False
