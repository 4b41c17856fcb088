"""Reading a job's images: all of them, one image, or one page (filtered through the byStatus and
byVerdict indexes) with its cursor."""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from typing import Any

from boto3.dynamodb.conditions import Attr

from chalicelib.core import contracts
from chalicelib.core.contracts import ImageStatus
from chalicelib.core.errors import (
    BadRequest,
)
from chalicelib.store.base import StoreBase
from chalicelib.store.items import (
    _BAD_CURSOR,
    MAX_IMAGES_PAGE_SIZE,
    Page,
    _decode_cursor,
    _encode_cursor,
    _ImagesView,
    _limit,
    plain,
)


class ImageReads(StoreBase):
    """Reads of a job's images, whole or by page."""

    def images(self, job_id: str) -> list[dict[str, Any]]:
        """Every image of a job, in image-id order."""
        return [plain(i) for i in self._query_all(KeyConditionExpression=self._images_condition(job_id))]

    def images_page(
        self,
        owner: str,
        job_id: str,
        *,
        limit: int = MAX_IMAGES_PAGE_SIZE,
        cursor: str | None = None,
        status: ImageStatus | None = None,
        verdict: str | None = None,
        indexed: bool = True,
    ) -> Page:
        """One page of a job's images, optionally only those in `status` and with scorecard
        `verdict` (contracts.Verdict; NONE: images without one). The caller has checked that
        `owner` owns the job; the cursor is bound to both and to the filters.

        Unfiltered, or by status (with or without a verdict): image-id order; by verdict alone:
        status, then image id. A filtered page is one Query of its index partition (byStatus,
        byVerdict), whatever the job's size. `indexed=False`: a job written before its image items
        carried those keys (no contracts.JOB_VIEW_KEYS_ATTRIBUTE), filtered as it was then."""
        want = _limit(limit, MAX_IMAGES_PAGE_SIZE)
        status = ImageStatus(status) if status is not None else None
        wanted = contracts.Verdict(verdict) if verdict is not None else None
        if not indexed and (status is not None or wanted is not None):
            return self._images_page_filtered_after(owner, job_id, want, cursor, status, wanted)
        view = _ImagesView.of(job_id, status, wanted)
        scope = self._images_scope(owner, job_id, status, wanted)
        # one more than a page, so a full last page has no cursor to an empty one
        kwargs: dict[str, Any] = {"KeyConditionExpression": view.condition, "Limit": want + 1}
        if view.index:
            kwargs["IndexName"] = view.index
        if cursor:
            start = _decode_cursor(cursor, scope, view.fixed, set(view.key_names))
            if not start["sk"].startswith(contracts.IMAGE_SK_PREFIX) or not view.owns(start):
                raise BadRequest(_BAD_CURSOR)
            kwargs["ExclusiveStartKey"] = start
        items: list[dict[str, Any]] = []
        # a page ends early only at DynamoDB's 1 MB of data read per call: read on until it is full
        while len(items) <= want:
            page = self.table.query(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            kwargs["Limit"] = want + 1 - len(items)
        more = len(items) > want
        items = items[:want]
        last = {name: items[-1][name] for name in view.key_names} if more and items else None
        return Page([plain(i) for i in items], _encode_cursor(scope, last))

    def _images_page_filtered_after(
        self,
        owner: str,
        job_id: str,
        want: int,
        cursor: str | None,
        status: ImageStatus | None,
        verdict: contracts.Verdict | None,
    ) -> Page:
        """A filtered page of a job whose image items have no index keys: the job partition read
        with a filter (DynamoDB applies Limit before it, so a page may take many queries)."""
        scope = self._images_scope(owner, job_id, status, verdict)
        kwargs: dict[str, Any] = {"KeyConditionExpression": self._images_condition(job_id), "Limit": want + 1}
        filters = []
        if status is not None:
            filters.append(Attr("status").eq(status.value))
        if verdict is not None:
            filters.append(
                Attr("verdict").not_exists() if verdict is contracts.Verdict.NONE else Attr("verdict").eq(verdict.value)
            )
        kwargs["FilterExpression"] = functools.reduce(operator.and_, filters)
        if cursor:
            start = _decode_cursor(cursor, scope, {"pk": contracts.job_pk(job_id)}, {"pk", "sk"})
            if not start["sk"].startswith(contracts.IMAGE_SK_PREFIX):
                raise BadRequest(_BAD_CURSOR)
            kwargs["ExclusiveStartKey"] = start
        items: list[dict[str, Any]] = []
        while len(items) <= want:
            page = self.table.query(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            kwargs["Limit"] = want + 1 - len(items)
        more = len(items) > want
        items = items[:want]
        last = {"pk": items[-1]["pk"], "sk": items[-1]["sk"]} if more and items else None
        return Page([plain(i) for i in items], _encode_cursor(scope, last))

    @staticmethod
    def _images_scope(
        owner: str, job_id: str, status: ImageStatus | None = None, verdict: contracts.Verdict | None = None
    ) -> str:
        scope = f"images:{owner}:{job_id}"
        if status is not None or verdict is not None:  # a cursor of one view is no cursor of another
            scope += f":{status.value if status else ''}:{verdict.value if verdict else ''}"
        return scope

    def images_cursor_after(
        self,
        owner: str,
        job_id: str,
        image: Mapping[str, Any],
        *,
        status: ImageStatus | None = None,
        verdict: str | None = None,
        indexed: bool = True,
    ) -> str:
        """The cursor of the page that starts after `image` (one of this job's images, from a page
        with these filters): a caller that returns fewer images than a page held (to keep its
        answer small) resumes there."""
        status = ImageStatus(status) if status is not None else None
        wanted = contracts.Verdict(verdict) if verdict is not None else None
        key: dict[str, Any] = self._image_key(job_id, str(image["imageId"]))
        if indexed:
            view = _ImagesView.of(job_id, status, wanted)
            stored = contracts.image_view_keys(
                job_id, str(image["imageId"]), str(image["status"]), image.get("verdict")
            )
            key.update({name: stored[name] for name in view.key_names - {"pk", "sk"}})
        cursor = _encode_cursor(self._images_scope(owner, job_id, status, wanted), key)
        assert cursor is not None  # a key always encodes
        return cursor

    def image(self, job_id: str, image_id: str) -> dict[str, Any] | None:
        """One image of a job as it is now, or None."""
        return self._image(job_id, image_id)

    def _image(self, job_id: str, image_id: str) -> dict[str, Any] | None:
        item = self.table.get_item(Key=self._image_key(job_id, image_id), ConsistentRead=True).get("Item")
        return plain(item) if item else None

    def get_image(self, job_id: str, image_id: str) -> dict[str, Any] | None:
        """One image of a job as stored now (a consistent read), or None."""
        return self._image(job_id, image_id)
