"""The web app in control, in headless Chromium against the local stack (issue #29): 200 photos
uploaded with a count, a bar and each file's state; a marketplace preset's warning and a budget's
warning before anything is spent; a named batch cancelled (asked first) and followed until its
closing is done, then deleted (asked first, saying what goes). Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ROOT, _free_port

from backend.local.stack import DEMO_PASSWORD, DEMO_USER, LocalStack

pytestmark = pytest.mark.slow
PHOTOS = 200


@pytest.fixture
def slow_stack() -> Iterator[tuple[LocalStack, str]]:
    """The local stack with a model quota of a few images a minute: a job runs long enough to cancel."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (it is in the dev extra)")
    stack = LocalStack(api_port=0, stage="control", images_per_minute=2).start()
    try:
        yield stack, stack.start_ui(_free_port())
    finally:
        stack.stop()


def _small_photos(folder: Path, count: int) -> list[str]:
    """Web-thumbnail photos: big enough to process (64 px), too small for label detection (80 px)
    and for any marketplace preset that asks the product to fill the frame."""
    paths = []
    for n in range(count):
        path = folder / f"shoe-{n:03d}.jpg"
        buf = io.BytesIO()
        Image.new("RGB", (72, 72), (40 + n % 200, 90, 160)).save(buf, "JPEG", quality=80)
        path.write_bytes(buf.getvalue())
        paths.append(str(path))
    return paths


def test_200_uploads_warnings_before_submit_then_cancel_and_delete(slow_stack, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    stack, ui = slow_stack
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        page.goto(ui)
        page.get_by_role("textbox", name="Email").fill(DEMO_USER)
        page.get_by_role("textbox", name="Password").fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("the email or the password is not right")).to_be_visible()
        expect(page.get_by_text("NotAuthorizedException")).to_have_count(0)  # no exception names
        page.get_by_role("textbox", name="Password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="New batch")).to_be_visible()

        # 200 photos: a count, a bar and each file's state while they go, in parallel
        page.locator('input[type="file"]').first.set_input_files(_small_photos(tmp_path, PHOTOS))
        page.get_by_role("button", name="Upload and detect labels").click()
        progress = page.get_by_text(re.compile(r"Uploaded ([2-9]\d|1\d\d)/200"))  # under way: a count, a bar
        expect(progress.first).to_be_visible(timeout=120_000)
        expect(page.get_by_test_id("stDataFrame").first).to_be_visible()  # each file's state, in a table
        expect(page.locator("td", has_text="uploaded").first).to_be_attached()
        page.screenshot(path=str(ARTIFACTS / "11-uploading-200.png"))
        expect(page.get_by_text("Keep what matters")).to_be_visible(timeout=300_000)
        expect(page.get_by_text("Uploaded 200/200").first).to_be_visible()

        # a marketplace preset: its rules, and every photo too small for them, before any model call
        page.get_by_text("Plain colour", exact=True).click()
        expect(page.get_by_text("Marketplace preset")).to_be_visible()
        expect(page.locator('[data-stale="true"]')).to_have_count(0)
        for _ in range(3):  # a click while the page is still settling closes the list again
            page.get_by_test_id("stSelectbox").filter(has_text="Marketplace preset").click()
            try:
                expect(page.get_by_role("option", name="Amazon main image")).to_be_visible(timeout=5_000)
                break
            except AssertionError:
                continue
        page.get_by_role("option", name="Amazon main image").click()
        expect(page.get_by_text("200 of 200 photo(s) are too small for Amazon main image")).to_be_visible()
        expect(page.get_by_text("pure white background, RGB 255, 255, 255")).to_be_visible()
        expect(page.get_by_role("button", name="Replace backgrounds")).to_be_disabled()
        expect(page.locator('[data-stale="true"]')).to_have_count(0)
        page.get_by_text("pure white background, RGB 255, 255, 255").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "12-preset-warning.png"))

        # a budget below the estimate: how many photos it sends
        page.get_by_text("Describe it (generated per photo)", exact=True).click()
        page.get_by_role("textbox", name="New background", exact=True).fill("a pale oak table")
        page.get_by_role("textbox", name="New background", exact=True).press("Control+Enter")
        page.get_by_text("Cap what this batch may spend", exact=True).click()
        budget = page.get_by_role("spinbutton", name="Budget (US dollars)")
        budget.fill("1.00")
        budget.press("Enter")
        expect(page.get_by_text(re.compile(r"This \$1\.00 budget sends \d+ of the 200 photos"))).to_be_visible()
        expect(page.locator('[data-stale="true"]')).to_have_count(0)
        page.get_by_text(re.compile(r"This \$1\.00 budget sends")).scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "13-budget-warning.png"))

        # a named batch of four photos, on a model quota of two a minute: cancelled while it runs
        page.get_by_role("button", name="Clear this batch").click()
        expect(page.get_by_text("Keep what matters")).to_have_count(0)
        samples = [str(ROOT / "samples" / f"{n}.jpg") for n in ("coffee", "rocket", "astronaut", "chelsea")]
        page.locator('input[type="file"]').first.set_input_files(samples)
        page.get_by_role("button", name="Upload and detect labels").click()
        expect(page.get_by_text("Uploaded 4/4").first).to_be_visible(timeout=90_000)
        # the new batch's cards (the last batch's stay on the page, greyed, until they are drawn)
        expect(page.get_by_role("combobox", name="coffee.jpg")).to_be_enabled(timeout=120_000)
        expect(page.locator('[data-stale="true"]')).to_have_count(0)
        page.get_by_role("textbox", name="New background", exact=True).fill("a pastel studio")
        page.get_by_role("textbox", name="New background", exact=True).press("Control+Enter")
        page.get_by_role("textbox", name="Batch name (optional)").fill("Cancel me")
        page.get_by_role("textbox", name="Batch name (optional)").press("Enter")
        expect(page.get_by_text(re.compile(r"Ready in (about|less than)"))).to_be_visible()  # the ETA, before submit
        stack.bedrock.empty_quota()  # the model's quota is spent: the photos wait for it
        page.get_by_role("button", name="Replace backgrounds").click()
        expect(page.get_by_text("started with 4 photo(s)")).to_be_visible()

        page.get_by_role("link", name="Jobs").click()
        expect(page.get_by_text("Cancel me", exact=True)).to_be_visible()
        page.get_by_role("button", name="Open").first.click()
        expect(page.get_by_role("heading", name="Cancel me")).to_be_visible()
        expect(page.get_by_text(re.compile(r"(About .* left|Less than a minute left)"))).to_be_visible(
            timeout=60_000
        )  # ETA
        page.get_by_role("button", name="Cancel job").click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_text("not finished yet will not be made")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "14-cancel-confirm.png"))
        dialog.get_by_role("button", name="Cancel the job").click()
        # followed until its closing is done: then Delete is offered, and the counts are true
        expect(page.get_by_role("button", name="Delete job")).to_be_visible(timeout=120_000)
        expect(page.get_by_text("Cancelled", exact=True)).to_be_visible()
        expect(page.get_by_text(re.compile(r"cancelled before they were made"))).to_be_visible()
        expect(page.get_by_text("4 of 4 done")).to_have_count(0)
        expect(page.locator('[data-stale="true"]')).to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / "15-cancelled.png"), full_page=True)

        page.get_by_role("button", name="Delete job").click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_text("Deletes this job for good")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "16-delete-confirm.png"))
        dialog.get_by_role("button", name="Delete for good").click()
        expect(page.get_by_role("heading", name="Jobs")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("The job was deleted.")).to_be_visible()
        expect(page.get_by_text("Cancel me", exact=True)).to_have_count(0)
        expect(page.get_by_text("No jobs yet")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "17-jobs-after-delete.png"), full_page=True)
        browser.close()
