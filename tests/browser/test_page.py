"""The try-it page in a real browser: Debian's Chromium driven by Playwright,
against the real service on the embedded defaults (`avatar-prep serve` and
`avatar-prep worker` as processes, a SQLite file, the filesystem broker, a
storage folder), as a person meets it after `make run`.

A screenshot of each state is saved under `test-output/page/` for people to
look at (README shows one)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from harness.local_stack import Child, create_key, run, start_api, start_worker
from sample_images import SAMPLES
from service.settings import Settings
from tests.documented import RENDITION_SIZES
from tests.services import service_missing

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "page"
# A verdict takes under a second here; a cold worker loads its models first.
VERDICT_TIMEOUT_MS = 60_000

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The API's base URL and a paid key, with one worker behind it."""
    root = tmp_path_factory.mktemp("page")
    settings = Settings(
        data_dir=root / "var",
        database_url=f"sqlite:///{root / 'var' / 'avatar-prep.db'}",
        storage_dir=root / "var" / "storage",
    )
    run(settings, "db", "upgrade")
    key = create_key(settings, "demo", "paid")
    children: list[Child] = []
    try:
        api, base_url = start_api(settings, root / "api.log")
        children.append(api)
        children.append(start_worker(settings, root / "worker.log", concurrency=1, beat=False))
        yield base_url, key
    finally:
        for child in reversed(children):
            child.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        service_missing("Chromium", f"{CHROMIUM} not found (make test installs Debian's chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, stack: tuple[str, str]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(VERDICT_TIMEOUT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.goto(stack[0] + "/")
    yield opened
    context.close()
    assert not errors, f"the page's script failed: {errors}"


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def enter_key(page: Page, key: str) -> None:
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Use this key").click()


def decoded(image: Locator, width: int | None = None) -> None:
    """Wait until the browser has loaded and decoded `image` (`width` px wide when
    given). Through locator assertions, which read properties without evaluating
    a string: the page's CSP (script-src 'self') forbids eval, as it should."""
    expect(image).to_have_js_property("complete", True)
    if width is None:
        expect(image).not_to_have_js_property("naturalWidth", 0)
    else:
        expect(image).to_have_js_property("naturalWidth", width)


def test_a_portrait_shows_its_verdict_checks_overlay_and_renditions(
    page: Page, stack: tuple[str, str]
) -> None:
    enter_key(page, stack[1])
    page.get_by_text("Key accepted.").wait_for()
    page.locator("#file").set_input_files(str(SAMPLES / "accept_portrait.jpg"))
    page.get_by_role("button", name="Check this photo").click()

    verdict = page.locator("#verdict")
    verdict.filter(has_text="Accepted").wait_for()
    assert page.locator("#checks tbody tr").count() >= 10
    assert page.locator("#checks tbody tr.fail").count() == 0
    assert page.locator("#avatar-id").inner_text().startswith("avat_")
    renditions = page.locator("#renditions img")
    expect(renditions).to_have_count(3)
    for ratio, (width, height) in RENDITION_SIZES.items():
        image = page.locator(f'#renditions img[data-ratio="{ratio}"]')
        decoded(image, width)
        expect(image).to_have_js_property("naturalHeight", height)
    decoded(page.locator("#overlay"))
    assert "upload-face" in page.locator("#curl").inner_text()
    shot(page, "accepted")

    page.get_by_role("tab", name="Your avatars").click()
    page.locator("#avatars li").first.wait_for()
    decoded(page.locator("#avatars img").first)
    shot(page, "avatars")


def test_a_rejected_photo_shows_its_reason_and_the_failed_check_first(
    page: Page, stack: tuple[str, str]
) -> None:
    enter_key(page, stack[1])
    page.locator("#file").set_input_files(str(SAMPLES / "reject_multiple_faces.jpg"))
    page.get_by_role("button", name="Check this photo").click()

    page.locator("#verdict").filter(has_text="face.multiple").wait_for()
    assert "one person" in page.locator("#verdict-message").inner_text()
    first = page.locator("#checks tbody tr").first
    assert first.get_attribute("class") == "fail"
    assert "face count" in first.inner_text()
    decoded(page.locator("#overlay"))
    assert "None" in page.locator("#renditions").inner_text()
    shot(page, "rejected")


def test_a_wrong_key_gets_a_clear_message(page: Page) -> None:
    enter_key(page, "ak_live_not-a-real-key")
    page.get_by_text("That API key was not accepted").wait_for()
    shot(page, "wrong-key")
