"""Cached labels: one item per uploaded object."""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib.core import config, contracts
from chalicelib.store.base import StoreBase
from chalicelib.store.items import BATCH_GET_MAX_KEYS, PARALLEL_CALLS, LabelEntry


class LabelCache(StoreBase):
    """The labels cache."""

    def cached_labels_entry(self, object_key: str) -> tuple[list[dict[str, Any]], dict[str, str] | None] | None:
        """(labels, why there are none or None) of an object, or None when nothing is cached."""
        item = self.table.get_item(Key=self._labels_key(object_key)).get("Item")
        if not item:
            return None
        unavailable = json.loads(item["unavailable"]) if item.get("unavailable") else None
        return json.loads(item["labels"]), unavailable

    def cached_labels(self, object_key: str) -> list[dict[str, Any]] | None:
        entry = self.cached_labels_entry(object_key)
        return entry[0] if entry else None

    def put_labels(
        self, object_key: str, labels: list[dict[str, Any]], unavailable: dict[str, str] | None = None
    ) -> None:
        item = {
            **self._labels_key(object_key),
            "labels": json.dumps(labels),  # a string: floats stay floats, no Decimal round trip
            "detectedAt": contracts.utc_now_iso(),
            # the labels of an upload go with it
            contracts.TTL_ATTRIBUTE: config.expires_at(config.UPLOAD_RETENTION_DAYS),
        }
        if unavailable:  # why label detection could not read the image: {code, message}
            item["unavailable"] = json.dumps(unavailable)
        self.table.put_item(Item=item)

    def cached_labels_many(self, object_keys: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Cached labels of many objects (see cached_label_entries_many)."""
        return {key: labels for key, (labels, _) in self.cached_label_entries_many(object_keys).items()}

    def cached_label_entries_many(self, object_keys: Sequence[str]) -> dict[str, LabelEntry]:
        """(labels, why there are none or None) of many objects, 100 keys per BatchGetItem (the
        API's limit), PARALLEL_CALLS of them at once; objects with nothing cached are left out."""
        unique = list(dict.fromkeys(object_keys))
        prefix = contracts.labels_pk("")

        def read(chunk: Sequence[str]) -> dict[str, LabelEntry]:
            found: dict[str, LabelEntry] = {}
            request: Any = {self.table.name: {"Keys": [self._labels_key(k) for k in chunk]}}
            while request:
                answer = self._client().batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self.table.name, []):
                    unavailable = json.loads(item["unavailable"]) if item.get("unavailable") else None
                    found[item["pk"].removeprefix(prefix)] = (json.loads(item["labels"]), unavailable)
                request = answer.get("UnprocessedKeys") or {}
            return found

        chunks = [unique[i : i + BATCH_GET_MAX_KEYS] for i in range(0, len(unique), BATCH_GET_MAX_KEYS)]
        found: dict[str, LabelEntry] = {}
        if len(chunks) <= 1:
            for chunk in chunks:
                found.update(read(chunk))
            return found
        with ThreadPoolExecutor(max_workers=min(PARALLEL_CALLS, len(chunks))) as pool:
            for part in pool.map(read, chunks):
                found.update(part)
        return found
