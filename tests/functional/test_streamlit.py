"""The Streamlit front end with the API client replaced by a fake (streamlit.testing AppTest)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from chalicelib import contracts
from chalicelib.models import registry
from frontend import photos
from frontend.api_client import ApiError, UploadOutcome

APP = str(Path(__file__).resolve().parents[2] / "frontend" / "streamlit_app.py")
JOB_ID = "20261124T120000Z-0123456789ab"
JOB_ID_2 = "20261124T130000Z-0123456789ab"


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (120, 80), (200, 30, 40)).save(buf, "PNG")
    return buf.getvalue()


class FakeApi:
    def __init__(self) -> None:
        self.submitted: list[dict[str, Any]] = []
        self.uploaded: list[str] = []
        self.job_status = "PARTIAL"
        self.refuse: dict[str, str] = {}
        self.no_labels: set[str] = set()
        self.pages_asked: list[tuple[int | None, str | None, str | None]] = []

    def health(self) -> dict[str, Any]:
        return {"status": "ok"}

    def models(self) -> dict[str, Any]:
        models = [{**m.public(), "selectable": registry.is_selectable(m)} for m in registry.all_models()]
        return {"models": models, "default": "stability-inpaint"}

    def presets(self) -> dict[str, Any]:
        from chalicelib import presets

        return {"presets": presets.public()}

    def upload_bytes(self, items: list[tuple[str, bytes, str]]) -> UploadOutcome:
        """Like the real client: files the API refuses (self.refuse: name → reason) are listed."""
        outcome = UploadOutcome()
        for i, (name, _, _) in enumerate(items):
            if name in self.refuse:
                outcome.rejected.append({"name": name, "message": self.refuse[name]})
                continue
            self.uploaded.append(name)
            outcome.uploaded.append({"imageRef": f"{'a' * 32}/{i:032x}.png", "name": name})
            outcome.positions.append(i)
        return outcome

    def label_results(self, refs: list[str]) -> dict[str, Any]:
        box = {"left": 0.1, "top": 0.1, "width": 0.5, "height": 0.5}
        labels = {
            ref: [
                {"name": "Person", "confidence": 98.0, "instances": [{"box": box, "confidence": 97.0}], "parents": []},
                {"name": "Chair", "confidence": 88.0, "instances": [{"box": box, "confidence": 80.0}], "parents": []},
            ]
            for ref in refs
        }
        unavailable = {}
        for ref in self.no_labels & set(refs):
            labels[ref] = []
            unavailable[ref] = {"code": "LABELS_UNAVAILABLE", "message": "the image is 70x70 px and label detection"}
        return {"labels": labels, "unavailable": unavailable}

    def submit(self, job: dict[str, Any]) -> dict[str, Any]:
        self.submitted.append(job)
        return {"jobId": JOB_ID, "status": "SUBMITTED", "imageCount": len(job["images"])}

    def jobs(self, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        return {
            "jobs": [
                {
                    "jobId": JOB_ID,
                    "status": "RUNNING",
                    "imageCount": 2,
                    "counts": {"SUCCEEDED": 1, "FAILED": 0, "PENDING": 1, "RUNNING": 0},
                    "prompt": "beach",
                }
            ],
            "nextCursor": None,
        }

    def job_summary(self, job_id: str) -> dict[str, Any]:
        return {k: v for k, v in self._view(job_id).items() if k not in ("images", "nextCursor")}

    def job_images(self, job_id: str, status: str | None = None) -> Any:
        return iter(i for i in self._view(job_id)["images"] if status in (None, i["status"]))

    def job(
        self, job_id: str, *, limit: int | None = None, cursor: str | None = None, status: str | None = None
    ) -> dict[str, Any]:
        self.pages_asked.append((limit, cursor, status))
        return self._view(job_id)

    def _view(self, job_id: str) -> dict[str, Any]:
        if job_id != JOB_ID:
            raise ApiError(404, "NOT_FOUND", f"no job {job_id}")
        return {
            "jobId": JOB_ID,
            "status": self.job_status,
            "model": "stability-inpaint",
            "prompt": "beach",
            "counts": {"SUCCEEDED": 1, "FAILED": 1, "PENDING": 0, "RUNNING": 0},
            "images": [
                {
                    "imageId": "b" * 32,
                    "name": "good.png",
                    "status": "SUCCEEDED",
                    "originalUrl": "http://127.0.0.1:1/o.png",
                    "outputs": [
                        {
                            "key": "results/u/j/b-1.png",
                            "url": "http://127.0.0.1:1/r.png",
                            "variant": 1,
                            "seed": 5,
                            "quality": {
                                "outcome": "WARN",
                                "checks": [
                                    {"check": "subjectFidelity", "outcome": "PASS", "reason": "Product untouched."},
                                    {"check": "edgeHalo", "outcome": "WARN", "reason": "Faint fringe (ΔE 2.4)."},
                                ],
                            },
                        }
                    ],
                },
                {
                    "imageId": "c" * 32,
                    "name": "blocked.png",
                    "status": "FAILED",
                    "errorCode": "CONTENT_FILTERED",
                    "cause": "the model's content filter blocked the prompt",
                    "originalUrl": "http://127.0.0.1:1/o2.png",
                    "outputs": [],
                },
            ],
            "reports": {"json": "http://127.0.0.1:1/report.json", "csv": "http://127.0.0.1:1/report.csv"},
            "nextCursor": None,
        }

    def download(self, url: str) -> bytes:
        return _png() if url.endswith(".png") else b"{}"

    def retry(self, job_id: str) -> dict[str, Any]:
        return {"jobId": "20261124T130000Z-0123456789ab", "imageCount": 1, "retryOf": job_id}


@pytest.fixture
def app() -> tuple[AppTest, FakeApi]:
    at = AppTest.from_file(APP, default_timeout=20)
    fake = FakeApi()
    at.session_state["api"] = fake
    at.session_state["user"] = "ana@example.com"
    return at, fake


def test_signed_out_shows_the_sign_in_page() -> None:
    at = AppTest.from_file(APP, default_timeout=20).run()
    assert not at.exception
    assert at.title[0].value == "Backdrop"
    assert at.text_input(key="username") is not None and at.button[0].label == "Sign in"


def test_the_banner_the_host_sets_is_on_every_page(app, monkeypatch) -> None:
    monkeypatch.setenv("BACKDROP_UI_BANNER", "Local stack, not AWS: cut-outs by a model on this machine.")
    signed_out = AppTest.from_file(APP, default_timeout=20).run()
    assert [w.value for w in signed_out.warning] == ["Local stack, not AWS: cut-outs by a model on this machine."]
    at, _ = app
    at.run()
    assert not at.exception
    assert at.warning[0].value == "Local stack, not AWS: cut-outs by a model on this machine."


def test_sign_in_errors_are_shown_not_raised(monkeypatch) -> None:
    monkeypatch.delenv("BACKDROP_COGNITO_CLIENT_ID", raising=False)
    at = AppTest.from_file(APP, default_timeout=20).run()
    at.text_input(key="username").input("ana@example.com")
    at.text_input(key="password").input("pw")
    at.button[0].click().run()
    assert not at.exception
    assert "BACKDROP_COGNITO_CLIENT_ID" in at.error[0].value


def _upload(at: AppTest, names: list[str]) -> None:
    at.run()
    at.file_uploader(key="files").set_value([(name, _png(), "image/png") for name in names])
    at.run()
    at.button(key="upload").click().run()


def test_removing_a_label_changes_what_is_submitted(app) -> None:
    at, fake = app
    _upload(at, ["a.png", "b.png"])
    assert not at.exception
    assert not at.warning  # no banner unless whoever started the UI asks for one
    assert fake.uploaded == ["a.png", "b.png"]
    first_ref = f"{'a' * 32}/{0:032x}.png"
    at.multiselect(key=f"keep-{first_ref}").unselect("Chair").run()
    at.text_area(key="prompt").input("a quiet beach at dawn").run()
    at.button(key="submit").click().run()
    assert not at.exception
    job = fake.submitted[-1]
    assert [i["labels"] for i in job["images"]] == [["Person"], ["Person", "Chair"]]
    assert job["prompt"] == "a quiet beach at dawn" and job["mode"] == "PRECISE"
    assert "started with 2 photo(s)" in at.success[0].value


def test_validation_messages_show_before_submit(app) -> None:
    at, fake = app
    _upload(at, ["a.png"])
    at.text_area(key="prompt").input("x" * 10_001).run()
    assert any("10,001 characters" in e.value for e in at.error)
    assert at.button(key="submit").disabled
    assert any("10,001 / 10,000" in c.value for c in at.caption)
    assert fake.submitted == []


def test_every_file_not_added_is_listed_at_once_and_the_rest_go_on(app) -> None:
    at, fake = app
    at.run()
    too_big = b"\x89PNG\r\n\x1a\n" + bytes(contracts.MAX_UPLOAD_BYTES)
    fake.refuse = {"refused.png": "content type 'image/gif' is not accepted"}  # the API's answer
    fake.no_labels = {f"{'a' * 32}/{2:032x}.png"}
    at.file_uploader(key="files").set_value(
        [
            ("huge.png", too_big, "image/png"),
            ("ok.png", _png(), "image/png"),
            ("refused.png", _png(), "image/png"),
            ("small.png", _png(), "image/png"),
            ("empty.png", b"", "image/png"),
        ]
    )
    at.run()
    at.button(key="upload").click().run()
    assert not at.exception
    (problems,) = [e.value for e in at.error if "not added" in e.value]  # one message for every file
    assert problems.startswith("3 file(s) were not added")
    assert "'huge.png': " in problems and "15 MB limit" in problems
    assert "'empty.png': the file is empty" in problems
    assert "'refused.png': content type 'image/gif' is not accepted" in problems
    assert fake.uploaded == ["ok.png", "small.png"]
    assert [item["name"] for item in at.session_state["batch"]] == ["ok.png", "small.png"]
    assert any("Labels not available: the image is 70x70 px" in c.value for c in at.caption)
    at.text_area(key="prompt").input("a quiet beach").run()  # the list stays until the next upload
    assert any("3 file(s) were not added" in e.value for e in at.error)


def test_jobs_and_job_pages_render_status_causes_and_downloads(app) -> None:
    at, fake = app
    at.run()
    at.switch_page("pages/jobs.py").run()
    assert not at.exception
    assert any(JOB_ID in m.value for m in at.markdown)
    at.session_state["job_id"] = JOB_ID
    at.switch_page("pages/job.py").run()
    assert not at.exception
    assert any("CONTENT_FILTERED" in e.value for e in at.error)
    assert "Quality WARN: Faint fringe (ΔE 2.4)." in [w.value for w in at.warning]
    assert at.query_params[contracts.JOB_QUERY_PARAM] == JOB_ID  # the address names the job
    assert [b.label for b in at.get("link_button")] == ["Report (JSON)", "Report (CSV)"]
    assert at.get("download_button") == []  # no zip is built until asked for
    assert set(fake.pages_asked) == {(24, None, None)}  # one page, never the whole job


def test_the_zip_is_built_once_on_request_and_kept(app) -> None:
    at, fake = app
    downloads: list[str] = []
    real_download = fake.download
    fake.download = lambda url: downloads.append(url) or real_download(url)
    at.query_params[contracts.JOB_QUERY_PARAM] = JOB_ID
    at.run()
    at.switch_page("pages/job.py").run()
    assert downloads == []
    at.button(key="prepare_zip").click().run()
    assert not at.exception
    assert downloads == ["http://127.0.0.1:1/r.png"]
    assert [b.label for b in at.get("download_button")] == ["Download all (zip)"]
    at.run()  # another refresh downloads nothing again
    assert downloads == ["http://127.0.0.1:1/r.png"]


def test_a_job_in_the_address_opens_the_job_page(app) -> None:
    at, _ = app
    at.query_params[contracts.JOB_QUERY_PARAM] = JOB_ID
    at.switch_page("pages/job.py").run()
    assert not at.exception
    assert at.text_input(key=f"job_id_input-{JOB_ID}").value == JOB_ID
    assert any("blocked.png" in m.value for m in at.markdown)


def _failed_with(fake: FakeApi, code: str) -> None:
    real_view = fake._view

    def view(job_id: str) -> dict[str, Any]:
        answer = real_view(job_id)
        answer["images"][1]["errorCode"] = code
        return answer

    fake._view = view  # type: ignore[method-assign]


def test_no_retry_for_failures_that_would_happen_again(app) -> None:
    at, fake = app  # the failed image was blocked by the content filter
    at.query_params[contracts.JOB_QUERY_PARAM] = JOB_ID
    at.switch_page("pages/job.py").run()
    assert not at.exception
    assert "retry" not in [b.key for b in at.button]
    assert any("No retry: these failures (CONTENT_FILTERED)" in c.value for c in at.caption)


def test_one_retry_for_a_passing_failure_linked_to_the_new_job(app) -> None:
    at, fake = app
    _failed_with(fake, "MODEL_THROTTLED")
    retries: list[str] = []
    fake.retry = lambda job_id: retries.append(job_id) or {"jobId": JOB_ID_2, "imageCount": 1, "retryOf": job_id}
    at.query_params[contracts.JOB_QUERY_PARAM] = JOB_ID
    at.switch_page("pages/job.py").run()
    at.button(key="retry").click().run()
    assert not at.exception and retries == [JOB_ID]
    assert f"sent again as job {JOB_ID_2}" in at.success[0].value
    assert "retry" not in [b.key for b in at.button]  # once per failed set
    at.run()
    assert f"sent again as job {JOB_ID_2}" in at.success[0].value  # and it stays
    at.button(key="open_retry").click().run()
    assert at.query_params[contracts.JOB_QUERY_PARAM] == JOB_ID_2


def test_the_cost_is_said_in_plain_words_with_its_source_in_the_help(app) -> None:
    at, _ = app
    _upload(at, ["a.png", "b.png"])
    price = registry.get_model("stability-inpaint").price_per_image_usd
    (line,) = [m for m in at.markdown if m.value.startswith("About $")]
    assert line.value == f"About ${2 * price:.2f} for 2 photos"
    assert "UNCONFIRMED" not in line.value and "price table" not in line.value
    assert line.help and "per image" in line.help


def _jpeg(size: tuple[int, int], orientation: int = 1) -> bytes:
    img = Image.new("RGB", size, (30, 120, 200))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def test_a_text_file_named_jpg_and_a_tiny_photo_become_rejected_cards_and_the_rest_go_on(app) -> None:
    at, fake = app
    at.run()
    at.file_uploader(key="files").set_value(
        [
            ("broken.jpg", b"this is not a photo, just text\n" * 10, "image/jpeg"),
            ("tiny.png", _jpeg((40, 40)), "image/png"),
            ("ok.png", _png(), "image/png"),
        ]
    )
    at.run()
    at.button(key="upload").click().run()
    assert not at.exception
    assert fake.uploaded == ["ok.png"]  # refused before upload
    cards = [m.value for m in at.markdown if "not added" in m.value]
    assert cards == ["**broken.jpg** · not added", "**tiny.png** · not added"]
    captions = " ".join(c.value for c in at.caption)
    assert "not a PNG, JPEG or WEBP image" in captions
    assert f"at least {contracts.MIN_SOURCE_SIDE} px" in captions
    at.text_area(key="prompt").input("a quiet beach").run()
    assert not at.exception and not at.button(key="submit").disabled


def test_the_uploader_names_the_real_limit(app) -> None:
    at, _ = app
    at.run()
    uploader = at.file_uploader(key="files")
    assert f"up to {contracts.MAX_UPLOAD_BYTES // 2**20} MB" in uploader.label
    assert "200 MB" not in uploader.label


def test_thumbnails_are_turned_by_exif_orientation_and_unreadable_files_have_none() -> None:
    stored_landscape = _jpeg((120, 80), orientation=6)  # a phone photo held upright
    thumbnail = photos.thumbnail(stored_landscape, [], [])
    assert thumbnail is not None and thumbnail.size == (80, 120)
    assert photos.thumbnail(b"not a photo", [], []) is None


def test_a_reload_keeps_the_user_signed_in_on_the_same_job_until_sign_out(monkeypatch) -> None:
    from frontend import session

    fake = FakeApi()
    monkeypatch.setattr(session, "_browser", lambda: None)  # AppTest sends no cookies
    first = AppTest.from_file(APP, default_timeout=20)
    first.run()  # signed out
    with monkeypatch.context() as m:  # what a successful Cognito sign-in leaves behind
        m.setattr(session, "st", _FakeSt(first))
        session._keep(fake, "ana@example.com")
    session_id = first.session_state["session_id"]

    reloaded = AppTest.from_file(APP, default_timeout=20)  # a new browser session: empty state
    reloaded.query_params[session.SESSION_PARAM] = session_id
    reloaded.query_params[contracts.JOB_QUERY_PARAM] = JOB_ID
    reloaded.switch_page("pages/job.py").run()
    assert not reloaded.exception
    assert any("blocked.png" in m.value for m in reloaded.markdown)
    assert reloaded.query_params[session.SESSION_PARAM] == session_id

    stranger = AppTest.from_file(APP, default_timeout=20)
    stranger.query_params[session.SESSION_PARAM] = "guessed-" + session_id[8:]
    stranger.run()
    assert stranger.title[0].value == "Backdrop"  # the sign-in page

    home = AppTest.from_file(APP, default_timeout=20)
    home.query_params[session.SESSION_PARAM] = session_id
    home.run()
    assert home.sidebar.caption[0].value == "Signed in as ana@example.com"
    with monkeypatch.context() as m:  # what the sidebar's "Sign out" does
        m.setattr(session, "st", _FakeSt(home))
        session.sign_out()
    again = AppTest.from_file(APP, default_timeout=20)
    again.query_params[session.SESSION_PARAM] = session_id
    again.run()
    assert again.title[0].value == "Backdrop"


class _FakeSt:
    """Just the two parts of `st` that session._keep writes to, pointed at an AppTest."""

    def __init__(self, at: AppTest) -> None:
        self.session_state = at.session_state
        self.query_params = at.query_params


def test_a_job_link_opened_signed_out_asks_to_sign_in_then_opens_the_job(monkeypatch) -> None:
    from frontend import session

    at = AppTest.from_file(APP, default_timeout=20)
    at.query_params[contracts.JOB_QUERY_PARAM] = JOB_ID
    at.switch_page("pages/job.py").run()  # the link's address: /job?job=...
    assert not at.exception and at.title[0].value == "Backdrop"

    def signed_in(username: str, password: str) -> None:  # what a Cognito sign-in leaves behind
        import streamlit as st

        st.session_state["api"] = FakeApi()
        st.session_state["user"] = username

    monkeypatch.setattr(session, "sign_in", signed_in)
    at.text_input(key="username").input("ana@example.com")
    at.text_input(key="password").input("pw")
    at.button[0].click().run()
    assert not at.exception
    assert at.title[0].value == "Job"
    assert any("blocked.png" in m.value for m in at.markdown)


def test_the_browser_is_known_by_its_xsrf_secret_not_by_the_cookie_mask(monkeypatch) -> None:
    from frontend import session

    def cookie(mask: bytes, token: bytes) -> str:
        masked = bytes(b ^ mask[i % len(mask)] for i, b in enumerate(token))
        return f"2|{mask.hex()}|{masked.hex()}|1764000000"

    seen = []
    for value in (cookie(b"\x01\x02\x03\x04", b"secret-token-1"), cookie(b"\x09\x08\x07\x06", b"secret-token-1")):
        monkeypatch.setattr(session.st, "context", type("C", (), {"cookies": {"_streamlit_xsrf": value}})())
        seen.append(session._browser())
    assert seen[0] == seen[1] is not None  # two page loads of one browser
    other = cookie(b"\x01\x02\x03\x04", b"secret-token-2")
    monkeypatch.setattr(session.st, "context", type("C", (), {"cookies": {"_streamlit_xsrf": other}})())
    assert session._browser() != seen[0]


def test_a_colour_batch_with_a_preset_submits_no_prompt_and_costs_one_call_per_photo(app) -> None:
    at, fake = app
    _upload(at, ["a.png", "b.png"])
    at.radio(key="background_source").set_value("color").run()
    assert not at.exception
    assert not [t for t in at.text_area if t.key == "prompt"]  # nothing to describe for a colour
    at.selectbox(key="preset").set_value("amazon-main").run()
    (line,) = [m for m in at.markdown if m.value.startswith("About $")]
    compose = registry.get_model("stability-inpaint").compose_price_usd
    assert line.value == f"About ${2 * compose:.2f} for 2 photos, 2 model calls"
    at.button(key="submit").click().run()
    assert not at.exception
    job = fake.submitted[-1]
    assert job["preset"] == "amazon-main" and "background" not in job  # the preset's own white
    assert job["prompt"] == ""
    # the scene model is not a job's model
    options = at.selectbox(key="model").options
    assert registry.get_model("stability-inpaint").display_name in options
    assert registry.get_model("stability-image-core").display_name not in options
