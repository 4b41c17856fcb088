"""The web app in control of its jobs (streamlit.testing AppTest, the API client replaced by a
fake): Cancel and Delete with their confirmations, a page that keeps refreshing until a cancel's
closing is done, a running page that asks for its cards only when they changed and keeps them in
place, a batch name, and actions offered only where they can work."""

from __future__ import annotations

from typing import Any

import pytest
from streamlit.testing.v1 import AppTest
from test_streamlit import APP, JOB_ID, FakeApi, _cards, _result

from chalicelib.core import contracts
from frontend.api_client import ApiError


class ControlApi(FakeApi):
    """A running job that can be cancelled (its closing done on a later answer) and deleted."""

    def __init__(self) -> None:
        super().__init__()
        self.job_status = "RUNNING"
        self.cancelled: list[str] = []
        self.deleted: list[tuple[str, bool]] = []
        self.closing = False
        self.gone = False
        self.settings: dict[str, Any] = {"prompt": "beach"}

    def _view(self, job_id: str) -> dict[str, Any]:
        if self.gone:
            raise ApiError(404, "NOT_FOUND", f"no job {job_id}")
        view = super()._view(job_id)
        return {**view, "name": "Spring shoes", "closing": self.closing, "settings": self.settings}

    def cancel(self, job_id: str) -> dict[str, Any]:
        self.cancelled.append(job_id)
        self.job_status, self.closing = "CANCELLED", True  # a large job: closed in the background
        return {"jobId": job_id, "status": "CANCELLED", "closing": True, "closingBy": "BACKGROUND"}

    def delete(self, job_id: str, *, originals: bool = False) -> dict[str, Any]:
        self.deleted.append((job_id, originals))
        self.gone = True
        return {"jobId": job_id, "deleted": True, "deleting": False}


@pytest.fixture
def control() -> tuple[AppTest, ControlApi]:
    at = AppTest.from_file(APP, default_timeout=20)
    fake = ControlApi()
    at.session_state["api"] = fake
    at.session_state["user"] = "ana@example.com"
    return at, fake


def _open(at: AppTest) -> None:
    at.query_params[contracts.JOB_QUERY_PARAM] = JOB_ID
    at.switch_page("pages/job.py").run()
    assert not at.exception, at.exception


def _texts(at: AppTest) -> list[str]:
    return [e.value for kind in ("markdown", "caption", "info", "success", "warning", "error") for e in at.get(kind)]


def test_cancel_asks_first_then_the_page_follows_the_closing_until_it_is_done(control) -> None:
    at, fake = control
    fake.extra_images = [_result("2" * 32, "running.png", None, status="RUNNING")]
    _open(at)
    assert "Spring shoes" in [h.value for h in at.subheader]  # the batch's name, not its id
    assert "delete-page" not in [b.key for b in at.button]  # a running job is cancelled, not deleted
    at.button(key="cancel-page").click().run()
    assert not at.exception and fake.cancelled == []  # nothing yet: the confirmation says what happens
    assert any("not finished yet will not be made" in t for t in _texts(at))
    at.button(key="cancel_yes").click().run()
    assert fake.cancelled == [JOB_ID]
    # CANCELLED but still closing: still refreshing, said so, and nothing offered that cannot work yet
    at.run()
    assert not at.exception
    assert any("closing" in t for t in _texts(at))
    assert not {"cancel-page", "delete-page"} & {b.key for b in at.button}
    bar = at.get("progress")[0]
    assert bar.value < 100  # never a full bar for a cancelled job
    fake.closing = False  # the background run wrote the report
    at.run()
    assert "delete-page" in [b.key for b in at.button]


def test_delete_says_what_goes_and_can_take_the_originals_too(control) -> None:
    at, fake = control
    fake.job_status = "PARTIAL"
    _open(at)
    at.button(key="delete-page").click().run()
    assert fake.deleted == []
    said = " ".join(_texts(at))
    assert "1 result(s)" in said and "reports" in said and "original photos stay" in said
    at.checkbox(key="delete_originals").check().run()
    at.button(key="delete_yes").click().run()
    assert fake.deleted == [(JOB_ID, True)]


def test_the_jobs_list_names_each_batch_and_offers_cancel(control) -> None:
    at, fake = control
    at.run()
    at.switch_page("pages/jobs.py").run()
    assert not at.exception
    assert any(m.value.startswith("**Unnamed batch** · Running") for m in at.markdown)
    at.button(key=f"cancel-{JOB_ID}").click().run()
    at.button(key="cancel_yes").click().run()
    assert not at.exception and fake.cancelled == [JOB_ID]


def test_a_running_page_asks_for_its_cards_only_when_they_changed_and_keeps_their_order(control) -> None:
    at, fake = control
    fake.extra_images = [
        _result("0" * 32, "passed.png", "PASS"),
        _result("1" * 32, "fringe.png", "FAIL"),
        _result("2" * 32, "running.png", None, status="RUNNING"),
    ]
    _open(at)
    order = _cards(at)
    assert order == ["passed.png", "fringe.png", "running.png", "good.png", "blocked.png"]  # the job's order
    asked = len(fake.pages_asked)
    at.run()  # a refresh with nothing new: the summary alone, the cards drawn again as they were
    assert not at.exception and len(fake.pages_asked) == asked and _cards(at) == order
    fake.extra_images[2] = _result("2" * 32, "running.png", "FAIL")  # a result lands, doubtful
    at.run()
    assert len(fake.pages_asked) > asked and _cards(at) == order  # asked again, and no card moved


def test_regenerate_is_offered_only_for_a_described_background(control) -> None:
    at, fake = control
    fake.job_status = "COMPLETED"
    _open(at)
    assert f"regen-{'b' * 32}" in [b.key for b in at.button]
    fake.settings = {"background": {"source": "transparent"}}  # a cut-out would come out the same
    at.run()
    assert not at.exception and f"regen-{'b' * 32}" not in [b.key for b in at.button]


def test_photos_a_budget_left_unsent_are_sent_again_by_one_click(control) -> None:
    at, fake = control
    fake.job_status = "PARTIAL"
    real_view = fake._view

    def view(job_id: str) -> dict[str, Any]:
        answer = real_view(job_id)
        answer["images"][1].update(errorCode="BUDGET_REACHED", cause="the job's budget of $1.00 was spent")
        return answer

    fake._view = view  # type: ignore[method-assign]
    retries: list[str] = []
    fake.retry = lambda job_id: retries.append(job_id) or {"jobId": "20261124T130000Z-0123456789ab"}  # type: ignore[method-assign]
    _open(at)
    said = " ".join(_texts(at))
    assert "were not sent to the model: the batch's budget ($1.00) was spent" in said
    assert "change the photo" not in said.lower()  # the fix is a budget, not the photo
    assert any(e.value.startswith("Not sent: the budget was spent") for e in at.error)  # the card, in words
    at.button(key="retry").click().run()
    assert not at.exception and retries == [JOB_ID]
