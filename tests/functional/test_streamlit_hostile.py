"""User text is never markup in the web app: a hostile file name, prompt, label or message is
shown as its characters, in every place the app shows one (issue #26).

AppTest gives each element's Markdown source (what Streamlit's front end renders), so each test
reads the source of every Markdown-rendering element (markdown, captions, alerts, widget labels)
and checks two things: no piece of the hostile text is left where it would be markup (a link,
an image, a colour directive, an autolink), and the text a reader sees is the whole name.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest
from test_streamlit import APP, JOB_ID, FakeApi, _png

from frontend.api_client import ApiError
from frontend.safe_text import md

HOSTILE = "[phish](https://evil.example/login) :red[WARNING …] ![t](http://127.0.0.1:9/t.png).png"
# the markup the raw name would make: a link, a colour directive, an image, bare-URL autolinks
MARKUP = ("[phish]", "](https:", ":red[", "![t]", "https://", "http://", "](http:")


def _shown(source: str) -> str:
    """What a reader sees of escaped text: escapes resolved, zero-width spaces gone."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", source).replace("\u200b", "").replace("\u00a0", " ")


def _sources(at: AppTest) -> list[str]:
    """The Markdown source of every element that Streamlit renders as Markdown."""
    texts = [e.value for kind in ("markdown", "caption", "error", "warning", "info", "success") for e in at.get(kind)]
    labels = [w.label for kind in ("multiselect", "checkbox", "button", "text_input", "expander") for w in at.get(kind)]
    return [str(t) for t in texts + labels if t]


def _assert_inert(at: AppTest, text: str = HOSTILE, *, places: int = 1) -> list[str]:
    assert not at.exception, at.exception
    sources = _sources(at)
    for source in sources:
        for piece in MARKUP:
            assert piece not in source, f"{piece!r} is markup in {source!r}"
    showing = [s for s in sources if text in _shown(s)]
    assert len(showing) >= places, (places, sources)
    return showing


@pytest.fixture
def app() -> tuple[AppTest, FakeApi]:
    at = AppTest.from_file(APP, default_timeout=20)
    fake = FakeApi()
    at.session_state["api"] = fake
    at.session_state["user"] = "ana@example.com"
    return at, fake


def test_the_escaped_name_reads_as_the_name_and_makes_no_markup() -> None:
    escaped = md(HOSTILE)
    assert _shown(escaped) == HOSTILE
    assert escaped.startswith(r"\[phish\](https\:" + "\u200b" + "//evil.example/login)")
    assert r"\:" + "\u200b" + r"red\[WARNING …\]" in escaped and r"\!\[t\]" in escaped
    # block starts, emphasis, math, HTML, entities, e-mail and www autolinks, shortcodes
    for text, escaped_form in [
        ("# title", r"\# title"),
        ("- item", r"\- item"),
        ("1. first", r"1\. first"),
        ("    indented", "\u00a0\u00a0\u00a0\u00a0indented"),
        ("**bold** _it_ ~~s~~ `c`", r"\*\*bold\*\* \_it\_ \~\~s\~\~ \`c\`"),
        ("$x^2$ <img src=x> &amp;", r"\$x^2\$ \<img src=x\> \&amp;"),
        ("a@evil.example www.evil.example", r"a\@evil.example www\.evil.example"),
        (":smile: :material/home:", "\\:\u200bsmile\\:\u200b \\:\u200bmaterial/home\\:\u200b"),
        ("IMG_0042 photo-1.png", "IMG_0042 photo-1.png"),  # ordinary names stay as typed
        ("line\nbreak\r\x1b[31m", "line break \ufffd\\[31m"),
    ]:
        assert md(text) == escaped_form, text


def test_a_hostile_file_name_is_text_on_the_label_card_and_the_bulk_message(app) -> None:
    at, fake = app
    real_labels = fake.label_results

    def labels(refs: list[str]) -> dict[str, Any]:
        answer = real_labels(refs)
        for ref in refs:  # a label is user-visible text too
            answer["labels"][ref].append({"name": HOSTILE, "confidence": 70.0, "instances": [], "parents": []})
        return answer

    fake.label_results = labels  # type: ignore[method-assign]
    at.run()
    at.file_uploader(key="files").set_value([(HOSTILE, _png(), "image/png")])
    at.run()
    at.button(key="upload").click().run()
    assert fake.uploaded == [HOSTILE]
    _assert_inert(at)  # the card's title is the file name (the multiselect's label)
    at.multiselect(key="bulk_remove").select(HOSTILE).run()
    at.button(key="bulk_remove_apply").click().run()
    (removed,) = [s.value for s in at.success]
    assert _shown(removed) == f"Removed {HOSTILE} from 1 photo(s)."
    _assert_inert(at)


def test_a_refused_hostile_file_is_listed_as_text(app) -> None:
    at, fake = app
    fake.refuse = {HOSTILE: f"{HOSTILE} is not an image"}  # the API's message quotes the name
    at.run()
    at.file_uploader(key="files").set_value([(HOSTILE, _png(), "image/png"), ("ok.png", _png(), "image/png")])
    at.run()
    at.button(key="upload").click().run()
    # the list of files not added, the card's title and its message
    showing = _assert_inert(at, places=3)
    assert any(_shown(s).startswith("1 file(s) were not added") for s in showing)


def test_the_job_page_shows_hostile_names_prompts_and_causes_as_text(app) -> None:
    at, fake = app
    real_view = fake._view

    def view(job_id: str) -> dict[str, Any]:
        answer = real_view(job_id)
        answer["prompt"] = HOSTILE
        answer["cause"] = f"could not read {HOSTILE}"
        answer["notification"] = {"status": "FAILED", "cause": f"bounced: {HOSTILE}"}
        answer["images"][1]["name"] = HOSTILE
        answer["images"][1]["cause"] = f"the model refused {HOSTILE}"
        return answer

    fake._view = view  # type: ignore[method-assign]
    at.query_params["job"] = JOB_ID
    at.switch_page("pages/job.py").run()
    # the summary (prompt), the job's cause, the email's cause, the card's name and its cause
    showing = _assert_inert(at, places=5)
    assert any(_shown(s).startswith("**") and _shown(s).split("**")[1] == HOSTILE for s in showing)
    at.button(key=f"full-{'c' * 32}").click().run()  # the full-size dialog names the file too
    _assert_inert(at, places=5)


def test_the_jobs_page_shows_a_hostile_prompt_as_text(app) -> None:
    at, fake = app
    real_jobs = fake.jobs

    def jobs(limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        answer = real_jobs(limit, cursor)
        answer["jobs"][0]["prompt"] = HOSTILE
        return answer

    fake.jobs = jobs  # type: ignore[method-assign]
    at.run()
    at.switch_page("pages/jobs.py").run()
    _assert_inert(at)


def test_an_api_error_quoting_a_request_is_text(app) -> None:
    at, fake = app

    def submit(job: dict[str, Any]) -> dict[str, Any]:
        details = [{"field": HOSTILE, "message": f"unknown field {HOSTILE!r}"}]
        raise ApiError(400, "VALIDATION_FAILED", f"the job is not valid: {HOSTILE}", details)

    fake.submit = submit  # type: ignore[method-assign]
    at.run()
    at.file_uploader(key="files").set_value([("a.png", _png(), "image/png")])
    at.run()
    at.button(key="upload").click().run()
    at.text_area(key="prompt").input("a quiet beach").run()
    at.button(key="submit").click().run()
    # the error's message, and the detail line naming the field and quoting it
    showing = _assert_inert(at, places=2)
    assert any(_shown(s).startswith("• ") for s in showing)
