"""The New batch page before anything is spent (AppTest, the API client replaced by a fake): the
preset's rules and the photos too small for them, a budget's photo count, a format that cannot
hold transparency, the uploads' states and the failed ones sent again, and controls offered only
where they do something."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest
from test_streamlit import APP, FakeApi

from frontend.api_client import UploadOutcome


def _jpeg(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 40)).save(buf, "JPEG")
    return buf.getvalue()


class FlakyApi(FakeApi):
    """S3 drops the first try of the files named in `flaky`."""

    def __init__(self) -> None:
        super().__init__()
        self.flaky: set[str] = set()

    def upload_bytes(self, items: list[tuple[str, bytes, str]]) -> UploadOutcome:
        name = items[0][0]
        if name in self.flaky:
            self.flaky.discard(name)
            outcome = UploadOutcome()
            outcome.rejected.append({"name": name, "message": "the upload to S3 failed: connection reset"})
            return outcome
        return super().upload_bytes(items)


@pytest.fixture
def page() -> tuple[AppTest, FlakyApi]:
    at = AppTest.from_file(APP, default_timeout=30)
    fake = FlakyApi()
    at.session_state["api"] = fake
    at.session_state["user"] = "ana@example.com"
    return at, fake


def _upload(at: AppTest, files: list[tuple[str, bytes]]) -> None:
    at.run()
    at.file_uploader(key="files").set_value([(name, data, "image/jpeg") for name, data in files])
    at.run()
    at.button(key="upload").click().run()
    assert not at.exception, at.exception


def _said(at: AppTest, kind: str) -> str:
    return " ".join(e.value for e in at.get(kind))


def test_a_preset_says_its_rules_and_which_photos_cannot_meet_them_before_submit(page) -> None:
    at, fake = page
    _upload(at, [("web-1.jpg", _jpeg(640, 480)), ("web-2.jpg", _jpeg(800, 600))])
    at.radio(key="background_source").set_value("color").run()
    at.selectbox(key="preset").set_value("amazon-main").run()
    assert not at.exception
    info = _said(at, "info")
    assert "Amazon main image" in info and "pure white background" in info and "2,000 × 2,000 px" in info
    # the labels' boxes say the product is half the photo: far too small to fill 87% of 2,000 px
    warned = _said(at, "warning")
    assert "2 of 2 photo(s) are too small for Amazon main image" in warned
    assert "web-1.jpg" in warned and "Allow enlarging a small subject" in warned
    at.checkbox(key="allow_upscale").check().run()
    assert "too small" not in _said(at, "warning")
    at.button(key="submit").click().run()
    assert fake.submitted and fake.submitted[-1]["placement"]["allowUpscale"] is True


def test_a_photo_smaller_than_the_product_must_be_cannot_be_submitted_with_the_preset(page) -> None:
    at, fake = page
    fake.no_labels = set()
    _upload(at, [("tiny.jpg", _jpeg(300, 300))])
    fake_kept = at.session_state["batch"][0]["imageRef"]
    at.multiselect(key=f"keep-{fake_kept}").set_value([]).run()  # no box: judged on the whole photo
    at.radio(key="background_source").set_value("color").run()
    at.selectbox(key="preset").set_value("amazon-main").run()
    assert "1 of 1 photo(s) are too small" in _said(at, "error")
    assert at.button(key="submit").disabled


def test_a_budget_below_the_estimate_says_how_many_photos_it_sends(page) -> None:
    at, _ = page
    _upload(at, [(f"p{i}.jpg", _jpeg(640, 480)) for i in range(4)])
    at.text_area(key="prompt").input("a quiet beach").run()
    at.checkbox(key="cap_budget").check().run()
    assert "photos; the other" not in _said(at, "warning")  # the budget offered sends them all
    offered = at.number_input(key="budget").value
    at.number_input(key="budget").set_value(0.18).run()
    # what the API's cap will let through: its calls, two per photo with the default model
    from chalicelib.catalogue import costs
    from chalicelib.models import registry

    sent = costs.max_calls(registry.get_model("stability-inpaint"), 1, 0.18) // 2
    assert sent == 2
    warned = _said(at, "warning")
    assert "sends 2 of the 4 photos; the other 2 are not sent to the model" in warned
    assert f"${offered:.2f} sends every photo once" in warned


def test_a_transparent_background_cannot_be_asked_as_jpeg(page) -> None:
    at, _ = page
    _upload(at, [("a.jpg", _jpeg(640, 480))])
    at.radio(key="background_source").set_value("transparent").run()
    # Mode and Re-rolls do nothing for a composed background: not offered
    assert "mode" not in [r.key for r in at.radio] and "re_rolls" not in [n.key for n in at.number_input]
    at.selectbox(key="format").set_value("jpeg").run()
    assert "JPEG cannot hold transparency" in _said(at, "error")
    assert at.button(key="submit").disabled
    at.selectbox(key="format").set_value("png").run()
    assert "JPEG cannot hold transparency" not in _said(at, "error")


def test_describe_the_background_first_is_a_note_not_an_error(page) -> None:
    at, _ = page
    _upload(at, [("a.jpg", _jpeg(640, 480))])
    assert "Describe the new background first." in _said(at, "info")
    assert "Describe the new background first." not in _said(at, "error")
    assert "mode" in [r.key for r in at.radio] and "re_rolls" in [n.key for n in at.number_input]


def test_uploads_say_each_files_state_and_the_failed_ones_are_sent_again(page) -> None:
    at, fake = page
    fake.flaky = {"b.jpg"}
    _upload(at, [("a.jpg", _jpeg(640, 480)), ("b.jpg", _jpeg(640, 480)), ("c.jpg", _jpeg(640, 480))])
    assert [item["name"] for item in at.session_state["batch"]] == ["a.jpg", "c.jpg"]
    said = [c.value for c in at.caption] + [p.text for p in at.get("progress")]
    assert "Uploaded 2/3 · 1 failed (can be sent again)" in said
    at.button(key="upload_again").click().run()
    assert not at.exception
    # the batch keeps the order the files were chosen in, and nothing was sent twice
    assert [item["name"] for item in at.session_state["batch"]] == ["a.jpg", "b.jpg", "c.jpg"]
    assert sorted(fake.uploaded) == ["a.jpg", "b.jpg", "c.jpg"]
    assert "upload_again" not in [b.key for b in at.button]


def test_the_batch_name_goes_with_the_job(page) -> None:
    at, fake = page
    _upload(at, [("a.jpg", _jpeg(640, 480))])
    at.text_area(key="prompt").input("a quiet beach").run()
    at.text_input(key="batch_name").input("Spring shoes").run()
    at.button(key="submit").click().run()
    assert fake.submitted[-1]["name"] == "Spring shoes"
    assert any("Spring shoes" in s.value for s in at.success)


def test_a_batch_can_be_cleared_at_once(page) -> None:
    at, _ = page
    _upload(at, [(f"p{i}.jpg", _jpeg(640, 480)) for i in range(3)])
    assert len(at.session_state["batch"]) == 3
    at.button(key="clear_batch").click().run()
    assert not at.exception and "batch" not in at.session_state
    assert "Keep what matters" not in [s.value for s in at.subheader]
    assert at.file_uploader(key="files-1").value in (None, [])  # a new, empty picker
