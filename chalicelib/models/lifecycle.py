"""A model's lifecycle as Bedrock reports it in this region, falling back to the registry.

Bedrock states are ACTIVE → LEGACY → EOL; GetFoundationModel returns `modelLifecycle` with the
status and, for retiring models, `endOfLifeTime` (docs/aws-notes.md#n1-bedrock-model-lifecycle). Answers
are cached (the state changes over months, not minutes); if the caller's role may not ask, or
Bedrock does not know the model here, the lifecycle recorded in models.json is used and the
answer says so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from chalicelib.core.errors import client_error_code
from chalicelib.models.base import Lifecycle, LifecycleStatus, ModelSpec

CACHE_SECONDS = 3600
_RANK = {LifecycleStatus.ACTIVE: 0, LifecycleStatus.LEGACY: 1, LifecycleStatus.EOL: 2}


def _date(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    return str(value)[:10]


def _is_past(value: Any, now: float) -> bool:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.timestamp() <= now
    return False


class LifecycleChecker:
    def __init__(
        self, bedrock: Any, clock: Callable[[], float] = time.time, cache_seconds: float = CACHE_SECONDS
    ) -> None:
        self.bedrock = bedrock
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Lifecycle, str]] = {}
        self._lock = threading.Lock()

    def _ask(self, base_id: str) -> Lifecycle:
        details = self.bedrock.get_foundation_model(modelIdentifier=base_id)["modelDetails"]
        lifecycle = details.get("modelLifecycle") or {}
        status = LifecycleStatus(lifecycle.get("status", "ACTIVE"))
        end = lifecycle.get("endOfLifeTime")
        if end is not None and _is_past(end, self.clock()):
            status = LifecycleStatus.EOL
        return Lifecycle(
            status, _date(lifecycle.get("legacyTime")), _date(end), source=f"Bedrock GetFoundationModel({base_id})"
        )

    def lifecycle(self, spec: ModelSpec) -> tuple[Lifecycle, str]:
        """(lifecycle, where it came from: "bedrock" or "registry (<why>)")."""
        now = self.clock()
        with self._lock:
            cached = self._cache.get(spec.key)
            if cached and now - cached[0] < self.cache_seconds:
                return cached[1], cached[2]
        answers: list[Lifecycle] = []
        problems: list[str] = []
        for base_id in spec.base_model_ids.values():
            try:
                answers.append(self._ask(base_id))
            except Exception as exc:  # no permission, unknown here, throttled: fall back, say why
                code = client_error_code(exc) or type(exc).__name__
                problems.append(f"{base_id}: {code}")
        if answers and not problems:
            worst = max(answers, key=lambda lc: _RANK[lc.status])
            result = (worst, "bedrock")
        else:
            why = "; ".join(problems) or "no base model ids recorded"
            result = (spec.lifecycle, f"registry ({why})")
        with self._lock:
            self._cache[spec.key] = (now, *result)
        return result
