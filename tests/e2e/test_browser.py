"""End to end in headless Chromium against the local stack: sign in, upload two photos, remove a
label, submit with review before delivery, reject one result and approve, then work the gallery
(grid, before/after per card, side by side, full size) and fetch the zip the backend builds.
Screenshots go to test-artifacts/ (the README's are copied from there into docs/screenshots/).

Chromium comes from Debian's package (/usr/bin/chromium), driven by Playwright from PyPI; no
browser is ever downloaded by a test tool.
"""

from __future__ import annotations

import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.local.stack import DEMO_PASSWORD, DEMO_USER, LocalStack

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ui() -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (it is in the dev extra)")
    stack = LocalStack(api_port=0, stage="browser").start()
    try:
        yield stack.start_ui(_free_port())
    finally:
        stack.stop()


def test_whole_workflow_in_the_browser(ui: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        page.goto(ui)
        page.get_by_role("textbox", name="Email").fill(DEMO_USER)
        page.get_by_role("textbox", name="Password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="New batch")).to_be_visible()
        expect(page.get_by_text("up to 15 MB each")).to_be_visible()  # the real limit, not Streamlit's 200 MB
        expect(page.get_by_role("button", name="Deploy")).to_have_count(0)
        expect(page.get_by_text("Local stack, not AWS.")).to_be_visible()  # the stack's own banner
        page.screenshot(path=str(ARTIFACTS / "01-new-batch.png"), full_page=True)

        broken = tmp_path / "broken.jpg"
        broken.write_text("not a photo, just text\n" * 20)
        page.locator('input[type="file"]').set_input_files(
            [str(ROOT / "samples" / "coffee.jpg"), str(ROOT / "samples" / "rocket.jpg"), str(broken)]
        )
        page.get_by_role("button", name="Upload and detect labels").click()
        # labels: the local model boxes each photo, CPU work that a busy 2-core machine stretches
        expect(page.get_by_text("Keep what matters")).to_be_visible(timeout=90_000)
        expect(page.get_by_text("broken.jpg · not added")).to_be_visible()  # a card, not a traceback
        tags = page.locator("[data-tag]")
        expect(tags).to_have_count(2)  # one "Subject" label per photo, boxed by the local cut-out engine
        page.get_by_role("button", name="Remove Subject (99%)").first.click()  # drop the first photo's label
        expect(tags).to_have_count(1)
        page.get_by_role("textbox", name="New background", exact=True).fill("a pastel studio with soft daylight")
        page.get_by_role("textbox", name="New background", exact=True).press("Control+Enter")
        expect(page.get_by_text("34 / 10,000 characters")).to_be_visible()  # the counter follows the model's limit
        expect(page.get_by_text("About $")).to_contain_text("for 2 photos")
        expect(page.get_by_text("Describe the new background first.")).to_have_count(0)  # the page has settled
        page.set_viewport_size({"width": 1400, "height": 2400})  # Streamlit scrolls inside the page: show it all
        page.screenshot(path=str(ARTIFACTS / "02-labels-and-settings.png"), full_page=True)
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.get_by_text("Review before delivery", exact=True).click()  # wait for approval before delivery
        expect(page.get_by_role("spinbutton", name="Review deadline (hours)")).to_be_visible()
        page.get_by_role("button", name="Replace backgrounds").click()
        expect(page.get_by_text("started with 2 photo(s)")).to_be_visible()

        page.get_by_role("link", name="Jobs").click()
        expect(page.get_by_text("2 of 2 done")).to_be_visible(timeout=120_000)
        page.screenshot(path=str(ARTIFACTS / "03-jobs.png"), full_page=True)
        page.get_by_role("button", name="Open").first.click()
        # review before delivery: the workflow waits on its task token until the owner approves
        expect(page.get_by_role("button", name="Approve and deliver")).to_be_visible(timeout=120_000)
        expect(page.get_by_text("Waiting for your review", exact=True)).to_be_visible()  # not "RUNNING"
        page.get_by_text("Deliver", exact=True).first.click()  # reject the first result
        page.set_viewport_size({"width": 1400, "height": 1600})
        expect(page.locator('[data-stale="true"]')).to_have_count(0)  # the rerun has drawn everything
        page.screenshot(path=str(ARTIFACTS / "04-review.png"), full_page=True)
        page.get_by_role("button", name="Approve and deliver").click()
        expect(page.get_by_text("Done", exact=True)).to_be_visible(timeout=120_000)
        expect(page.get_by_text("Rejected in review: not delivered.")).to_be_visible()
        expect(page.get_by_role("button", name="Prepare zip")).to_be_visible(timeout=30_000)  # finished, drawn once
        expect(page.get_by_text("Cost: about $")).to_be_visible()  # what the run cost, in words
        expect(page.locator('[data-testid="stImage"] img')).to_have_count(2)  # a grid of results, one per card
        page.set_viewport_size({"width": 1400, "height": 1600})
        page.screenshot(path=str(ARTIFACTS / "05-job-gallery.png"), full_page=True)
        assert "job=" in page.url and "session=" in page.url

        # compare: one card flipped to its original, then every card side by side
        first_after = page.locator('[data-testid="stImage"] img').first.get_attribute("src")
        page.locator("label").filter(has_text="Before").first.click()
        expect(page.locator('[data-testid="stImage"] img').first).not_to_have_attribute("src", first_after or "")
        page.get_by_text("Side by side", exact=True).click()
        expect(page.locator('[data-testid="stImage"] img')).to_have_count(4)  # before and after, twice
        expect(page.locator('[data-stale="true"]')).to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / "06-compare.png"), full_page=True)
        page.get_by_role("button", name="Full size").first.click()
        expect(page.get_by_role("dialog")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "07-full-size.png"))
        page.keyboard.press("Escape")
        expect(page.get_by_role("dialog")).to_have_count(0)

        page.get_by_role("button", name="Prepare zip").click()  # built by the backend, once
        expect(page.get_by_role("link", name="Download zip")).to_be_visible(timeout=30_000)
        href = page.get_by_role("link", name="Download zip").get_attribute("href") or ""
        assert "/archive/results.zip" in href

        page.reload()  # still signed in, still on the job
        expect(page.get_by_text("Done", exact=True)).to_be_visible()
        expect(page.get_by_text(f"Signed in as {DEMO_USER}")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "08-job-after-reload.png"), full_page=True)

        stranger = browser.new_context().new_page()  # the address alone signs nobody in elsewhere
        stranger.goto(page.url)
        expect(stranger.get_by_role("button", name="Sign in")).to_be_visible()
        stranger.screenshot(path=str(ARTIFACTS / "09-job-link-signed-out.png"), full_page=True)
        browser.close()


def test_variants_side_by_side_a_pick_and_a_regeneration_in_the_browser(ui: str) -> None:
    """Three variants of one photo on the default model: all three on the card, the best
    delivered, another picked with "Deliver this one", then "Regenerate" with an edited prompt."""
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        page.goto(ui)
        page.get_by_role("textbox", name="Email").fill(DEMO_USER)
        page.get_by_role("textbox", name="Password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="New batch")).to_be_visible()
        page.locator('input[type="file"]').set_input_files([str(ROOT / "samples" / "coffee.jpg")])
        page.get_by_role("button", name="Upload and detect labels").click()
        expect(page.get_by_text("Keep what matters")).to_be_visible(timeout=90_000)
        page.get_by_role("textbox", name="New background", exact=True).fill("a pastel studio with soft daylight")
        page.get_by_role("textbox", name="New background", exact=True).press("Control+Enter")
        variants = page.get_by_role("spinbutton", name="Variants per photo")
        variants.fill("3")
        variants.press("Enter")
        re_rolls = page.get_by_role("spinbutton", name="Re-rolls")
        re_rolls.fill("0")
        re_rolls.press("Enter")
        expect(page.get_by_text("(3 variants each)")).to_be_visible()  # the cost of three calls, said before
        page.get_by_role("button", name="Replace backgrounds").click()
        expect(page.get_by_text("started with 1 photo(s)")).to_be_visible()

        page.get_by_role("link", name="Jobs").click()
        expect(page.get_by_text("1 of 1 done")).to_be_visible(timeout=180_000)
        page.get_by_role("button", name="Open").first.click()
        expect(page.get_by_text("Done", exact=True)).to_be_visible(timeout=120_000)
        expect(page.get_by_text("DELIVERED (best)")).to_be_visible()
        # the delivered one large, and the three side by side
        expect(page.locator('[data-testid="stImage"] img')).to_have_count(4)
        expect(page.get_by_role("button", name="Deliver this one")).to_have_count(0)  # it is the delivered one
        variants = page.locator('[data-testid="stButtonGroup"]').last  # the card's, after the page's Compare
        other = next(n for n in "123" if variants.get_by_text(n, exact=True).count())  # not the ticked one
        variants.get_by_text(other, exact=True).click()  # look at it large
        page.get_by_role("button", name="Deliver this one").click()
        expect(page.get_by_text("will be delivered")).to_be_visible()
        expect(page.get_by_text("DELIVERED (your pick)")).to_be_visible()
        expect(variants.get_by_text(f"{other} ✓", exact=True)).to_be_visible()
        expect(page.locator('[data-stale="true"]')).to_have_count(0)
        job_url = page.url

        page.get_by_role("button", name="Regenerate").first.click()
        page.get_by_role("textbox", name="Prompt (optional)").fill("a pale oak table by a window")
        page.get_by_role("button", name="Regenerate this one").click()
        expect(page.get_by_text("Regenerating as job")).to_be_visible()
        page.get_by_role("button", name="Open the regeneration's job").click()
        # its own job, finished: the cut-out and one inpaint ("Spent so far" while it runs)
        expect(page.get_by_text(re.compile(r"Cost: about \$[0-9.]+ \(2 model calls\)"))).to_be_visible(timeout=180_000)
        page.goto(job_url)  # back on the first job: the regenerated result is its fourth variant
        variants = page.locator('[data-testid="stButtonGroup"]').last
        expect(variants.get_by_text("4", exact=True)).to_be_visible(timeout=60_000)
        expect(page.get_by_text("DELIVERED (your pick)")).to_be_visible()
        page.set_viewport_size({"width": 1400, "height": 2000})  # Streamlit scrolls inside the page: show it all
        expect(page.locator('[data-stale="true"]')).to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / "10-variants.png"), full_page=True)
        browser.close()
