"""Model lifecycle from Bedrock's control plane, with the registry as the fallback."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.core.errors import ModelUnavailable
from chalicelib.models import registry
from chalicelib.models.base import LifecycleStatus
from chalicelib.models.lifecycle import LifecycleChecker

NOW = datetime(2026, 11, 24, tzinfo=UTC).timestamp()


class FakeBedrock:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def get_foundation_model(self, modelIdentifier: str) -> dict[str, Any]:  # boto3's parameter name
        self.calls.append(modelIdentifier)
        answer = self.answers.get(modelIdentifier, "AccessDeniedException")
        if isinstance(answer, str):
            raise ClientError({"Error": {"Code": answer, "Message": answer}}, "GetFoundationModel")
        return {"modelDetails": {"modelId": modelIdentifier, "modelLifecycle": answer}}


STABILITY = registry.get_model("stability-inpaint")
BASE_IDS = list(STABILITY.base_model_ids.values())


def _checker(answers: dict[str, Any]) -> tuple[LifecycleChecker, FakeBedrock]:
    fake = FakeBedrock(answers)
    return LifecycleChecker(fake, clock=lambda: NOW), fake


def test_active_everywhere_is_active_from_bedrock() -> None:
    checker, fake = _checker({b: {"status": "ACTIVE"} for b in BASE_IDS})
    lifecycle, source = checker.lifecycle(STABILITY)
    assert (lifecycle.status, source) == (LifecycleStatus.ACTIVE, "bedrock")
    checker.lifecycle(STABILITY)
    assert len(fake.calls) == len(BASE_IDS)  # cached


def test_one_legacy_call_makes_the_model_legacy_with_its_date() -> None:
    eol = datetime(2027, 6, 1, tzinfo=UTC)
    answers = {BASE_IDS[0]: {"status": "ACTIVE"}, BASE_IDS[1]: {"status": "LEGACY", "endOfLifeTime": eol}}
    lifecycle, _ = _checker(answers)[0].lifecycle(STABILITY)
    assert lifecycle.status is LifecycleStatus.LEGACY and lifecycle.eol_date == "2027-06-01"
    assert registry.is_selectable(STABILITY, lifecycle)


def test_past_end_of_life_is_refused_naming_usable_models() -> None:
    gone = datetime(2026, 9, 30, tzinfo=UTC)
    answers = {b: {"status": "LEGACY", "endOfLifeTime": gone} for b in BASE_IDS}
    lifecycle, _ = _checker(answers)[0].lifecycle(STABILITY)
    assert lifecycle.status is LifecycleStatus.EOL
    with pytest.raises(ModelUnavailable, match="2026-09-30"):
        registry.get_selectable_model("stability-inpaint", lifecycle)


def test_access_denied_falls_back_to_the_registry_and_says_why() -> None:
    lifecycle, source = _checker({})[0].lifecycle(registry.get_model("nova-canvas"))
    assert lifecycle.status is LifecycleStatus.EOL and lifecycle.eol_date == "2026-09-30"
    assert source.startswith("registry (") and "AccessDeniedException" in source
