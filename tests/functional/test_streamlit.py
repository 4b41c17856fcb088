"""The Streamlit front end with the API client replaced by a fake (streamlit.testing AppTest)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from builders import SCENE_REGION
from PIL import Image
from streamlit.testing.v1 import AppTest

from chalicelib.core import contracts, estimate
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


def _ref(name: str) -> str:
    return f"{'a' * 32}/{hashlib.md5(name.encode()).hexdigest()}.png"


class FakeApi:
    def __init__(self) -> None:
        self.submitted: list[dict[str, Any]] = []
        self.uploaded: list[str] = []
        self.job_status = "PARTIAL"
        self.refuse: dict[str, str] = {}
        self.no_labels: set[str] = set()
        self.pages_asked: list[tuple[Any, ...]] = []
        self.answers = 0
        self.archive_asked = []
        self.archive_answers = []
        self.review_state: dict[str, Any] | None = None
        self.decisions: list[dict[str, str]] = []
        self.approved: list[str] = []
        self.extra_images: list[dict[str, Any]] = []
        self.picks = []
        self.regenerations = []
        self.cost_extra: dict[str, Any] = {}
        self.report_rewrite: dict[str, Any] | None = None  # a large job's pick: its report in the background

    def health(self) -> dict[str, Any]:
        return {"status": "ok"}

    def models(self) -> dict[str, Any]:
        # as GET /models answers: selectable = not retired and callable from the deployment's Region
        models = [
            {
                **m.public(),
                "selectable": registry.is_selectable(m) and registry.region_refusal(m) is None,
                "unavailableHere": registry.region_refusal(m),
            }
            for m in registry.all_models()
        ]
        return {"models": models, "default": "stability-inpaint"}

    def presets(self) -> dict[str, Any]:
        from chalicelib.catalogue import presets

        return {"presets": presets.public()}

    def upload_bytes(self, items: list[tuple[str, bytes, str]]) -> UploadOutcome:
        """Like the real client: files the API refuses (self.refuse: name → reason) are listed."""
        outcome = UploadOutcome()
        for i, (name, _, _) in enumerate(items):
            if name in self.refuse:
                outcome.rejected.append({"name": name, "message": self.refuse[name]})
                continue
            # a ref of its own per file, whatever order the files are sent in (in parallel)
            outcome.uploaded.append({"imageRef": _ref(name), "name": name})
            self.uploaded.append(name)
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
        self,
        job_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        status: str | None = None,
        verdict: str | None = None,
    ) -> dict[str, Any]:
        """Like the API: one page (image-id order) of the images in `status` with `verdict`, and
        fresh presigned links on every answer (their signature differs each time)."""
        self.pages_asked.append((limit, cursor, status) if verdict is None else (limit, cursor, status, verdict))
        view = self._view(job_id)
        self.answers += 1
        matching = [
            {
                **image,
                "originalUrl": f"{image['originalUrl']}?sig={self.answers}",
                "outputs": [{**o, "url": f"{o['url']}?sig={self.answers}"} for o in image.get("outputs") or []],
            }
            for image in sorted(view["images"], key=lambda i: i["imageId"])
            if status in (None, image["status"])
            and (verdict is None or image.get("verdict") == verdict or (verdict == "NONE" and not image.get("verdict")))
        ]
        start = int(cursor or 0)
        size = 50 if limit is None else limit
        page = matching[start : start + size]
        more = start + size < len(matching)
        return {**view, "images": page, "nextCursor": str(start + size) if more and size else None}

    def _view(self, job_id: str) -> dict[str, Any]:
        if job_id != JOB_ID:
            raise ApiError(404, "NOT_FOUND", f"no job {job_id}")
        images = [
            {
                "imageId": "b" * 32,
                "name": "good.png",
                "status": "SUCCEEDED",
                "verdict": "WARN",
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
            *self.extra_images,
        ]
        counts = {status.value: sum(i["status"] == status.value for i in images) for status in contracts.ImageStatus}
        verdicts = {v: sum(i.get("verdict") == v for i in images) for v in ("FAIL", "WARN", "PASS", "SKIPPED")}
        return {
            "jobId": JOB_ID,
            "status": self.job_status,
            "model": "stability-inpaint",
            "prompt": "beach",
            "counts": counts,
            "verdicts": verdicts,
            **({"review": self.review_state} if self.review_state else {}),
            **({"reportRewrite": self.report_rewrite} if self.report_rewrite else {}),
            "cost": {
                "modelCalls": 3,
                "actualUsd": 0.12,
                "estimateUsd": 0.16,
                "budgetUsd": 1.0,
                "priceSource": "p",
                **self.cost_extra,
            },
            "images": images,
            "reports": {"json": "http://127.0.0.1:1/report.json", "csv": "http://127.0.0.1:1/report.csv"},
            "nextCursor": None,
        }

    def download(self, url: str) -> bytes:
        return _png() if url.endswith(".png") else b"{}"

    def retry(self, job_id: str) -> dict[str, Any]:
        return {"jobId": "20261124T130000Z-0123456789ab", "imageCount": 1, "retryOf": job_id}

    picks: list[tuple[str, str, int]]
    regenerations: list[tuple[str, str, int | None, str | None]]

    def pick(self, job_id: str, image_id: str, variant: int) -> dict[str, Any]:
        """Like the API: the variant becomes the delivered one (the next view shows it)."""
        self.picks.append((job_id, image_id, variant))
        for image in self.extra_images:
            if image["imageId"] == image_id:
                for output in image["outputs"]:
                    output["delivered"] = output["variant"] == variant
                    output["pickedBy"] = "OWNER" if output["delivered"] else None
        if self.report_rewrite is not None:  # a large job: its report is written in the background
            self.report_rewrite = {"status": "STARTED", "requestedAt": "2026-11-25T08:00:00.000000Z"}
            return {"jobId": job_id, "imageId": image_id, "delivered": variant, "report": "REWRITING"}
        return {"jobId": job_id, "imageId": image_id, "delivered": variant, "report": "REWRITTEN"}

    def regenerate(
        self, job_id: str, image_id: str, *, seed: int | None = None, prompt: str | None = None
    ) -> dict[str, Any]:
        self.regenerations.append((job_id, image_id, seed, prompt))
        return {
            "jobId": "20261124T140000Z-0123456789ab",
            "seed": seed if seed is not None else 314,
            "estimate": {"sentence": "About $0.04 for 1 photo"},
            "regenerateOf": {"jobId": job_id, "imageId": image_id},
        }

    archive_asked: list[tuple[str, bool, bool]]
    archive_answers: list[dict[str, Any]]

    def archive(self, job_id: str, *, originals: bool = False, report: bool = False) -> dict[str, Any]:
        self.archive_asked.append((job_id, originals, report))
        return self.archive_answers.pop(0)

    def review(self, job_id: str, decisions: dict[str, str]) -> dict[str, Any]:
        self.decisions.append(decisions)
        return {"jobId": job_id, "decided": len(decisions)}

    def approve(self, job_id: str) -> dict[str, Any]:
        self.approved.append(job_id)
        return {"jobId": job_id, "review": "APPROVED", "rejected": 1}

    def archive_status(self, job_id: str, *, originals: bool = False, report: bool = False) -> dict[str, Any]:
        return self.archive_answers.pop(0)


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
    assert sorted(fake.uploaded) == ["a.png", "b.png"]  # sent in parallel: in any order
    first_ref = _ref("a.png")
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
    fake.no_labels = {_ref("small.png")}
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
    assert sorted(fake.uploaded) == ["ok.png", "small.png"]
    assert [item["name"] for item in at.session_state["batch"]] == ["ok.png", "small.png"]
    assert any("Labels not available: the image is 70x70 px" in c.value for c in at.caption)
    at.text_area(key="prompt").input("a quiet beach").run()  # the list stays until the next upload
    assert any("3 file(s) were not added" in e.value for e in at.error)


def test_jobs_and_job_pages_render_status_causes_and_downloads(app) -> None:
    at, fake = app
    at.run()
    at.switch_page("pages/jobs.py").run()
    assert not at.exception
    assert any(JOB_ID in c.value for c in at.caption)
    at.session_state["job_id"] = JOB_ID
    at.switch_page("pages/job.py").run()
    assert not at.exception
    # the cause in words, without its code
    assert any(e.value.startswith("Blocked by the model's safety filter: ") for e in at.error)
    assert not any("CONTENT_FILTERED" in e.value for e in at.error)
    assert "Quality WARN: Faint fringe (ΔE 2.4)." in [w.value for w in at.warning]
    assert at.query_params[contracts.JOB_QUERY_PARAM] == JOB_ID  # the address names the job
    assert [b.label for b in at.get("link_button")] == ["Report (JSON)", "Report (CSV)"]
    assert at.get("download_button") == []  # no zip is built until asked for
    # the summary, then one page from each non-empty segment of "doubtful first", never the whole job
    assert fake.pages_asked == [(0, None, None), (24, None, "FAILED"), (23, None, "SUCCEEDED", "WARN")]


READY = {"state": "READY", "kind": "results", "url": "http://127.0.0.1:1/a.zip", "bytes": 3 * 2**20, "expiresIn": 900}


def test_the_zip_is_asked_of_the_backend_once_and_linked(app) -> None:
    at, fake = app
    downloads: list[str] = []
    fake.download = downloads.append  # the page itself downloads nothing
    fake.archive_answers = [dict(READY)]
    _open_job(at)
    assert fake.archive_asked == []  # nothing is built until asked for
    at.checkbox(key="archive_report").check().run()
    at.button(key="prepare_zip").click().run()
    assert not at.exception and fake.archive_asked == [(JOB_ID, False, True)]
    assert "Download zip (3.0 MB)" in [b.label for b in at.get("link_button")]
    at.run()  # a refresh asks nothing again
    assert fake.archive_asked == [(JOB_ID, False, True)] and downloads == []


def test_a_large_zip_shows_its_progress_until_its_link(app) -> None:
    at, fake = app
    fake.archive_answers = [
        {"state": "BUILDING", "kind": "results", "done": 0, "total": 400},
        {"state": "BUILDING", "kind": "results", "done": 150, "total": 400},
        dict(READY),
    ]
    _open_job(at)
    at.button(key="prepare_zip").click().run()
    assert not at.exception
    assert any(p.text == "Building the zip: 150/400 files" for p in at.get("progress"))
    at.run()
    assert not at.exception and "Download zip (3.0 MB)" in [b.label for b in at.get("link_button")]


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
    assert any("No retry: these failures (blocked by the model's safety filter)" in c.value for c in at.caption)


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
    spec = registry.get_model("stability-inpaint")
    check = contracts.REKOGNITION_USD_PER_IMAGE
    (line,) = [m for m in at.markdown if m.value.startswith("About $")]
    # the model calls and the quality checks, and as a maximum one re-roll of every photo (the default)
    usd = 2 * (spec.price_per_image_usd + 3 * check)
    most = usd + 2 * (spec.re_roll_price_usd + 2 * check)
    assert line.value == f"About ${usd:.2f} for 2 photos (up to ${most:.2f} if every image is re-rolled)"
    assert "UNCONFIRMED" not in line.value and "price table" not in line.value
    assert line.help and "per image" in line.help and "Rekognition" in line.help
    at.number_input(key="re_rolls").set_value(0).run()
    (line,) = [m for m in at.markdown if m.value.startswith("About $")]
    assert line.value == f"About ${usd:.2f} for 2 photos"


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


_SCENE_LABEL = "One generated scene for the whole batch"  # frontend/pages/new_batch.py's BACKGROUND_LABELS


def test_the_scene_background_is_offered_only_where_the_api_accepts_it(app) -> None:
    """In us-east-1 the scene model cannot be called (it runs in us-west-2): no scene choice, and
    the form says why, instead of a 400 after the photos are uploaded."""
    at, _ = app
    _upload(at, ["a.png"])
    assert _SCENE_LABEL not in at.radio(key="background_source").options
    assert "Plain colour" in at.radio(key="background_source").options
    assert any("us-west-2" in c.value for c in at.caption)
    # ... and the scene model is not listed among the retired ones: it is live, just not here
    (retired,) = [c.value for c in at.caption if c.value.startswith("Not available (end of life)")]
    assert "Stable Image Core" not in retired and "Titan" in retired


@pytest.mark.region(SCENE_REGION)
def test_the_scene_background_is_offered_in_the_scene_models_region(app) -> None:
    at, _ = app
    _upload(at, ["a.png"])
    assert _SCENE_LABEL in at.radio(key="background_source").options


def test_a_colour_batch_with_a_preset_submits_no_prompt_and_costs_one_call_per_photo(app) -> None:
    at, fake = app
    _upload(at, ["a.png", "b.png"])
    at.radio(key="background_source").set_value("color").run()
    assert not at.exception
    assert not [t for t in at.text_area if t.key == "prompt"]  # nothing to describe for a colour
    at.selectbox(key="preset").set_value("amazon-main").run()
    (line,) = [m for m in at.markdown if m.value.startswith("About $")]
    spec = registry.get_model("stability-inpaint")
    found = estimate.job_estimate(
        2,
        1,
        spec.price_per_image_usd,
        spec.re_roll_price_usd,
        1,
        compose_images=2,
        compose_price_usd=spec.compose_price_usd,
    )
    assert found.re_roll_max_usd == 0  # a composed background is never re-rolled
    assert line.value == f"About ${found.usd:.2f} for 2 photos, 2 model calls"
    at.button(key="submit").click().run()
    assert not at.exception
    job = fake.submitted[-1]
    assert job["preset"] == "amazon-main" and "background" not in job  # the preset's own white
    assert job["prompt"] == ""
    # the scene model is not a job's model
    options = at.selectbox(key="model").options
    assert registry.get_model("stability-inpaint").display_name in options
    assert registry.get_model("stability-image-core").display_name not in options


# ---------------------------------------------------------------- the gallery


def _result(image_id: str, name: str, verdict: str | None, status: str = "SUCCEEDED") -> dict[str, Any]:
    outputs = []
    if status == "SUCCEEDED":
        outputs = [
            {
                "key": f"results/u/j/{image_id}-1.png",
                "url": f"http://127.0.0.1:1/{image_id}-r.png",
                "variant": 1,
                "seed": 5,
                "quality": {"outcome": verdict or "PASS", "checks": []},
            }
        ]
    image = {
        "imageId": image_id,
        "name": name,
        "status": status,
        "originalUrl": f"http://127.0.0.1:1/{image_id}-o.png",
        "outputs": outputs,
    }
    if verdict:
        image["verdict"] = verdict
    return image


def _cards(at: AppTest) -> list[str]:
    return [m.value.split("**")[1] for m in at.markdown if m.value.startswith("**") and ".png" in m.value]


def _images(at: AppTest) -> list[str]:
    return [url for image in at.get("image") for url in image.value]


def _open_job(at: AppTest) -> None:
    at.query_params[contracts.JOB_QUERY_PARAM] = JOB_ID
    at.switch_page("pages/job.py").run()
    assert not at.exception


def test_the_gallery_shows_doubtful_images_first(app) -> None:
    at, fake = app
    fake.extra_images = [
        _result("0" * 32, "passed.png", "PASS"),  # first in image-id order
        _result("1" * 32, "fringe.png", "FAIL"),
        _result("2" * 32, "running.png", None, status="RUNNING"),
    ]
    _open_job(at)
    # failed, then FAIL, WARN, PASS, then not finished
    assert _cards(at) == ["blocked.png", "fringe.png", "good.png", "passed.png", "running.png"]
    at.selectbox(key="job_order-done").set_value("Fixed order").run()
    assert _cards(at) == ["passed.png", "fringe.png", "running.png", "good.png", "blocked.png"]


def test_the_gallery_filters_by_verdict_and_status(app) -> None:
    at, fake = app
    fake.extra_images = [_result("1" * 32, "fringe.png", "FAIL"), _result("0" * 32, "passed.png", "PASS")]
    _open_job(at)
    at.selectbox(key="job_verdict").set_value("Quality FAIL").run()
    assert not at.exception and _cards(at) == ["fringe.png"]
    assert fake.pages_asked[-1] == (24, None, "SUCCEEDED", "FAIL")  # filtered by the API, not here
    at.selectbox(key="job_verdict").set_value("Any verdict").run()
    at.selectbox(key="job_filter").set_value("Failed").run()
    assert _cards(at) == ["blocked.png"]


def test_a_big_job_is_shown_a_page_at_a_time(app) -> None:
    at, fake = app
    fake.extra_images = [_result(f"{i:032x}", f"photo-{i:03}.png", "PASS") for i in range(60)]
    _open_job(at)
    assert len(_cards(at)) == 24
    assert all(asked[0] in (0, 24, 23, 22) for asked in fake.pages_asked)  # never more than a page
    seen = set(_cards(at))
    at.button(key="page_next").click().run()
    assert not at.exception and len(_cards(at)) == 24 and not seen & set(_cards(at))
    at.button(key="page_next").click().run()
    assert len(_cards(at)) == 62 - 48 and "page_next" not in [b.key for b in at.button]
    at.button(key="page_back").click().run()
    assert len(_cards(at)) == 24


def test_image_links_stay_the_same_between_refreshes(app) -> None:
    at, fake = app
    _open_job(at)
    first = _images(at)
    assert first and all("?sig=" in url for url in first)
    answers = fake.answers
    at.run()  # the API answers with new signatures...
    assert fake.answers > answers
    assert _images(at) == first  # ...the page keeps the links it had, so the browser downloads nothing


def test_each_card_compares_before_and_after_and_opens_full_size(app) -> None:
    at, fake = app
    _open_job(at)
    after = [url for url in _images(at) if "/r.png" in url]
    assert len(after) == 1
    at.toggle(key=f"before-{'b' * 32}").set_value(True).run()
    assert not [url for url in _images(at) if "/r.png" in url]  # that card now shows its original
    at.toggle(key=f"before-{'b' * 32}").set_value(False).run()
    at.button_group[0].set_value("Side by side").run()
    assert sum("/o.png" in url for url in _images(at)) == 1 and sum("/r.png" in url for url in _images(at)) == 1
    at.button(key=f"full-{'b' * 32}").click().run()
    assert not at.exception
    assert any("After (variant 1)" in caption for image in at.get("image") for caption in image.captions)


def test_a_label_is_removed_from_every_photo_at_once(app) -> None:
    at, fake = app
    _upload(at, ["a.png", "b.png", "c.png"])
    at.multiselect(key="bulk_remove").select("Chair").run()
    at.button(key="bulk_remove_apply").click().run()
    assert not at.exception
    assert "Removed Chair from 3 photo(s)." in [s.value for s in at.success]
    at.text_area(key="prompt").input("a quiet beach").run()
    at.button(key="submit").click().run()
    assert [i["labels"] for i in fake.submitted[-1]["images"]] == [["Person"]] * 3


def test_the_label_step_is_paged_and_keeps_choices_across_pages(app) -> None:
    at, fake = app
    _upload(at, [f"p{i:02}.png" for i in range(30)])
    assert len([m for m in at.multiselect if m.key and m.key.startswith("keep-")]) == 24
    first_ref = _ref("p00.png")
    at.multiselect(key=f"keep-{first_ref}").unselect("Chair").run()
    at.number_input(key="label_page").set_value(2).run()
    assert len([m for m in at.multiselect if m.key and m.key.startswith("keep-")]) == 6
    at.number_input(key="label_page").set_value(1).run()
    assert at.multiselect(key=f"keep-{first_ref}").value == ["Person"]
    at.text_area(key="prompt").input("a quiet beach").run()
    at.button(key="submit").click().run()
    assert fake.submitted[-1]["images"][0]["labels"] == ["Person"]
    assert fake.submitted[-1]["images"][29]["labels"] == ["Person", "Chair"]


def test_an_uploaded_batch_survives_a_reload(monkeypatch) -> None:
    from frontend import session

    fake = FakeApi()
    monkeypatch.setattr(session, "_browser", lambda: None)
    first = AppTest.from_file(APP, default_timeout=20)
    first.session_state["api"] = fake  # signed in, as sign_in leaves it
    first.session_state["user"] = "ana@example.com"
    with monkeypatch.context() as m:
        m.setattr(session, "st", _FakeSt(first))
        session._keep(fake, "ana@example.com")
    session_id = first.session_state["session_id"]
    _upload(first, ["a.png", "b.png"])
    first.multiselect(key=f"keep-{_ref('a.png')}").unselect("Chair").run()
    assert not first.exception

    reloaded = AppTest.from_file(APP, default_timeout=20)  # F5: a new browser session
    reloaded.query_params[session.SESSION_PARAM] = session_id
    reloaded.run()
    assert not reloaded.exception
    assert [item["name"] for item in reloaded.session_state["batch"]] == ["a.png", "b.png"]
    assert reloaded.multiselect(key=f"keep-{_ref('a.png')}").value == ["Person"]


def test_the_job_page_says_what_the_job_cost_and_a_budget_is_sent(app) -> None:
    at, fake = app
    _open_job(at)
    # one sentence, each figure said once with what it is
    assert any(
        c.value == "Cost: about $0.12 (3 model calls); estimated $0.16 before the run · budget $1.00"
        for c in at.caption
    )
    fake.cost_extra = {"regenerations": 2, "regeneratedUsd": 0.084}  # billed to their own jobs
    at.run()
    assert any(c.value.endswith("· budget $1.00 · regenerations: $0.08 for 2") for c in at.caption)
    at.switch_page("pages/new_batch.py").run()
    _upload(at, ["a.png"])
    at.checkbox(key="cap_budget").check().run()
    # the budget offered sends the photo, both of its calls, as the API's cap counts them
    from chalicelib.catalogue import costs
    from chalicelib.models import registry

    offered = at.number_input(key="budget").value
    assert costs.max_calls(registry.get_model("stability-inpaint"), 1, offered) == 2
    assert costs.max_calls(registry.get_model("stability-inpaint"), 1, offered - 0.01) < 2
    at.number_input(key="budget").set_value(5.0).run()
    at.text_area(key="prompt").input("a quiet beach").run()
    at.button(key="submit").click().run()
    assert not at.exception and fake.submitted[-1]["budgetUsd"] == 5.0


def test_a_job_waiting_for_review_is_approved_result_by_result_then_delivered(app) -> None:
    at, fake = app
    fake.job_status = "RUNNING"
    fake.review_state = {"status": "WAITING", "deadline": "2026-11-25T18:00:00Z"}
    _open_job(at)
    (banner,) = [i.value for i in at.info if "Review before delivery" in i.value]
    # the deadline in plain words (the day, the time, how long is left), not a timestamp
    assert "Review by Wed 25 Nov, 18:00 UTC (" in banner and "2026-11-25T18" not in banner
    at.checkbox(key=f"deliver-{'b' * 32}").uncheck().run()
    assert not at.exception and fake.decisions == [{"b" * 32: "REJECTED"}]
    at.button(key="approve").click().run()
    assert not at.exception and fake.approved == [JOB_ID]
    at.switch_page("pages/new_batch.py").run()
    _upload(at, ["a.png"])
    at.checkbox(key="review").check().run()
    at.number_input(key="review_hours").set_value(4.0).run()
    at.text_area(key="prompt").input("a quiet beach").run()
    at.button(key="submit").click().run()
    assert not at.exception and fake.submitted[-1]["reviewHours"] == 4.0


def _with_variants(image_id: str, outcomes: list[str], delivered: int) -> dict[str, Any]:
    image = _result(image_id, "bottle.png", outcomes[delivered - 1])
    image["outputs"] = [
        {
            "key": f"results/u/j/{image_id}-{v}.png",
            "url": f"http://127.0.0.1:1/{image_id}-r{v}.png",
            "variant": v,
            "seed": 40 + v,
            "costUsd": 0.04,
            "delivered": v == delivered,
            "pickedBy": "BEST" if v == delivered else None,
            "quality": {"outcome": outcome, "checks": []},
        }
        for v, outcome in enumerate(outcomes, start=1)
    ]
    return image


def test_a_cards_variants_are_side_by_side_and_another_can_be_delivered_or_regenerated(app) -> None:
    at, fake = app
    image_id = "0" * 32
    fake.extra_images = [_with_variants(image_id, ["FAIL", "PASS", "WARN"], delivered=2)]
    _open_job(at)
    captions = [c for image in at.get("image") for c in image.captions]
    # large: the delivered one, with what it is; small: all three side by side, the delivered one ticked
    assert "Variant 2 · PASS · seed 42 · $0.04 · DELIVERED (best)" in captions
    assert [c for c in captions if c[:1].isdigit()] == ["1 · FAIL", "2 · PASS ✓", "3 · WARN"]
    assert not [b for b in at.button if b.key and b.key.startswith("pick-")]  # the delivered one is in focus
    at.button_group(key=f"focus-{image_id}").set_value(3).run()  # look at variant 3 large
    captions = [c for image in at.get("image") for c in image.captions]
    assert "Variant 3 · WARN · seed 43 · $0.04" in captions
    at.button(key=f"pick-{image_id}-3").click().run()
    assert not at.exception and fake.picks == [(JOB_ID, image_id, 3)]
    assert any("Variant 3 will be delivered" in s.value for s in at.success)
    captions = [c for image in at.get("image") for c in image.captions]
    assert "Variant 3 · WARN · seed 43 · $0.04 · DELIVERED (your pick)" in captions and "3 · WARN ✓" in captions
    at.text_input(key=f"regen-seed-{image_id}").input("77").run()
    at.text_area(key=f"regen-prompt-{image_id}").input("a pale oak table").run()
    at.button(key=f"regen-{image_id}").click().run()
    assert not at.exception and fake.regenerations == [(JOB_ID, image_id, 77, "a pale oak table")]
    assert any("Regenerating as job 20261124T140000Z-0123456789ab (seed 77" in s.value for s in at.success)
    at.button(key="open_regenerated").click().run()  # follows it to its own job's page
    assert at.query_params[contracts.JOB_QUERY_PARAM] == "20261124T140000Z-0123456789ab"


def test_a_pick_on_a_large_job_says_the_report_is_being_updated_until_it_is(app) -> None:
    at, fake = app
    image_id = "0" * 32
    fake.extra_images = [_with_variants(image_id, ["FAIL", "PASS"], delivered=2)]
    fake.report_rewrite = {}  # large: the next pick is written into the report in the background
    _open_job(at)
    assert not [i for i in at.info if "report is being updated" in i.value]
    at.button_group(key=f"focus-{image_id}").set_value(1).run()
    at.button(key=f"pick-{image_id}-1").click().run()
    assert any("Variant 1 will be delivered. The report is being updated." in s.value for s in at.success)
    assert any("report is being updated with your picks" in i.value for i in at.info)
    fake.report_rewrite = {"status": "FAILED", "requestedAt": "x", "lastError": "Rate exceeded"}
    at.run()
    assert any("waiting to be updated with your picks: Rate exceeded" in w.value for w in at.warning)


def test_the_new_batch_page_takes_variants_on_the_default_model_and_costs_them(app) -> None:
    at, fake = app
    _upload(at, ["a.png", "b.png"])
    spec = registry.get_model("stability-inpaint")
    check = contracts.REKOGNITION_USD_PER_IMAGE
    at.number_input(key="re_rolls").set_value(0).run()
    at.number_input(key="variants").set_value(contracts.MAX_VARIANTS).run()
    assert not at.exception and not [e.value for e in at.error if "variants" in e.value.lower()], [
        e.value for e in at.error
    ]
    (line,) = [m for m in at.markdown if m.value.startswith("About $")]
    n = contracts.MAX_VARIANTS
    usd = 2 * (spec.price_per_image_usd + (n - 1) * spec.re_roll_price_usd + (2 * n + 1) * check)
    assert line.value == f"About ${usd:.2f} for 2 photos ({n} variants each)"
    at.text_area(key="prompt").input("a quiet beach").run()
    at.button(key="submit").click().run()
    assert not at.exception and fake.submitted[-1]["variants"] == n  # what was chosen is what is sent
