"""A real headless Chromium opens the app, visits every tab, runs a request on each, flips the
backend toggle, and saves screenshots to artifacts/screenshots/."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from pipelines.core.diffusion import PREVIEW_SIDE

# Debian's chromium (what CI installs); else the browser of `playwright install chromium`.
CHROMIUM = shutil.which("chromium")
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
WAIT_MS = 180_000  # generous: the first PyTorch request loads the model


@pytest.fixture(scope="module")
def page(services, serve):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with serve(services) as demo, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(WAIT_MS)
        page.goto(demo.local_url)
        page.get_by_role("tab", name="Translation").wait_for()
        yield page
        browser.close()


def _open(page, tab: str):
    """Open `tab`; only the open tab's panel is in the page."""
    page.get_by_role("tab", name=tab).click()
    return page.get_by_role("tabpanel")


def _wait_text(locator, pattern: str) -> str:
    locator.filter(has_text=re.compile(pattern)).wait_for()
    return locator.inner_text()


def test_translation_tab_runs_and_compares_backends(page):
    panel = _open(page, "Translation")
    assert "Stand-in model" in panel.inner_text()
    panel.get_by_role("button", name="Translate").click()
    _wait_text(page.locator("#translation-latency"), r"OpenVINO INT8 weights [\d.]+ ms")
    panel.get_by_role("radio", name="PyTorch", exact=True).check()
    panel.get_by_role("button", name="Translate").click()
    line = _wait_text(page.locator("#translation-latency"), r"PyTorch fp32 [\d.]+ ms")
    memory = r"(, [\d.]+ [MG]B)?"  # what each model added to its process
    pattern = (
        rf"OpenVINO INT8 weights [\d.]+ ms{memory} · PyTorch fp32 [\d.]+ ms{memory} · OpenVINO [\d.]+× (faster|slower)"
    )
    assert re.search(pattern, line), line
    assert page.locator("#translation-output textarea").input_value()  # random weights still emit tokens
    page.screenshot(path=SHOTS / "translation.png", full_page=True)


def _chart_bars(page, elem_id: str, *wanted: str) -> list[str]:
    """The bars the session chart of `elem_id` draws, by their labels ("sentiment · OpenVINO (2); median
    ms: 9.6; backend: OpenVINO"), once every `wanted` pattern is among them; each drawn in a colour."""
    chart = page.locator(f"#{elem_id}-chart")
    chart.wait_for(state="visible")
    bars = chart.locator("g.mark-rect path[aria-roledescription=bar]")
    for pattern in wanted:
        page.wait_for_function(
            "([id, pattern]) => [...document.querySelectorAll(`#${id}-chart g.mark-rect path`)]"
            ".some(p => new RegExp(pattern).test(p.getAttribute('aria-label')))",
            arg=[elem_id, pattern],
        )
    assert all(bar.get_attribute("fill") for bar in bars.all())  # every backend in its colour
    return [bar.get_attribute("aria-label") for bar in bars.all()]


def test_both_backends_in_one_click_side_by_side(page):
    panel = _open(page, "Translation")
    panel.get_by_role("radio", name="Both", exact=True).check()
    panel.get_by_role("button", name="Translate").click()
    line = _wait_text(page.locator("#translation-latency"), r"\*\*OpenVINO .*\*\*PyTorch|OpenVINO .* · PyTorch")
    assert re.search(r"OpenVINO INT8 weights [\d.]+ ms.* · PyTorch fp32 [\d.]+ ms.* · OpenVINO [\d.]+×", line), line
    page.locator("#translation-output-pytorch").wait_for(state="visible")
    assert page.locator("#translation-output-pytorch textarea").input_value()
    assert "Translation: PyTorch" in panel.inner_text() and "Translation: OpenVINO" in panel.inner_text()
    bars = _chart_bars(page, "translation-latency", r"OpenVINO \(2\)", r"PyTorch \(2\)")
    assert len(bars) == 2, bars  # a bar per backend: the first test's run and this one's, each
    page.screenshot(path=SHOTS / "both-translation.png", full_page=True)
    panel.get_by_role("radio", name="OpenVINO", exact=True).check()


def test_the_session_chart_gains_a_bar_after_a_run(page):
    panel = _open(page, "Classification")
    panel.get_by_role("radio", name="OpenVINO", exact=True).check()
    panel.get_by_role("button", name="Classify").click()
    _wait_text(page.locator("#classify-latency"), r"OpenVINO INT8( weights)? [\d.]+ ms")
    bars = _chart_bars(page, "classify-latency", r"sentiment · OpenVINO \(1\)")
    assert any("sentiment · PyTorch (0)" in bar for bar in bars), bars  # not run yet: no height
    panel.get_by_role("radio", name="Both", exact=True).check()
    panel.get_by_role("button", name="Classify").click()
    page.locator("#classify-scores-pytorch").wait_for(state="visible")
    _chart_bars(page, "classify-latency", r"sentiment · OpenVINO \(2\)", r"sentiment · PyTorch \(1\)")
    assert "Scores: PyTorch" in panel.inner_text()
    page.screenshot(path=SHOTS / "both-classification-chart.png", full_page=True)
    panel.get_by_role("radio", name="OpenVINO", exact=True).check()


def test_classification_tab_runs_sentiment_and_zero_shot(page):
    panel = _open(page, "Classification")
    panel.get_by_role("button", name="Classify").click()
    scores = _wait_text(page.locator("#classify-scores"), r"POSITIVE|NEGATIVE")
    assert "POSITIVE" in scores and "NEGATIVE" in scores
    text, labels = panel.get_by_role("textbox").all()[:2]
    text.fill("The striker scored twice and the team won the league.")
    labels.fill("sports, cooking, finance")
    panel.get_by_role("button", name="Classify").click()
    scores = _wait_text(page.locator("#classify-scores"), r"cooking")
    # The real all-MiniLM-L6-v2 picks the obvious label: the top class is shown first, under the title.
    lines = [line for line in scores.splitlines() if line.strip()]
    assert lines[lines.index("Scores") + 1] == "sports", scores
    page.screenshot(path=SHOTS / "classification.png", full_page=True)


def test_bad_input_shows_a_message_not_a_traceback(page):
    panel = _open(page, "Classification")
    panel.get_by_role("textbox").nth(1).fill("a, a")
    panel.get_by_role("button", name="Classify").click()
    page.get_by_text("Duplicate label 'a': give each label once.").first.wait_for()
    assert "Traceback" not in page.content()
    page.screenshot(path=SHOTS / "error.png", full_page=True)


def _set_steps(panel, steps: int) -> None:
    """The first number box of an image tab is its Steps slider's."""
    box = panel.locator("input[type=number]").first
    box.fill(str(steps))
    box.press("Enter")


def test_sd_tab_generates_on_both_backends(page):
    panel = _open(page, "SD-ToMe-INT8")
    assert "Stand-in model" in panel.inner_text()
    _set_steps(panel, 2)
    panel.get_by_role("button", name="Generate").click()
    _wait_text(page.locator("#sd-latency"), r"OpenVINO ToMe\+INT8 [\d.]+ ms|OpenVINO INT8 [\d.]+ ms")
    panel.get_by_role("radio", name="PyTorch", exact=True).check()
    panel.get_by_role("button", name="Generate").click()
    line = _wait_text(page.locator("#sd-latency"), r"PyTorch fp32 [\d.]+ ms")
    assert re.search(r"OpenVINO [\d.]+× (faster|slower)", line), line
    assert panel.locator("img").count() >= 1
    page.screenshot(path=SHOTS / "sd.png", full_page=True)


def test_pose_tab_generates_from_a_preset(page):
    panel = _open(page, "ControlNet pose")
    panel.get_by_role("button", name="Detect pose").wait_for()
    panel.locator(".gallery-item, button.gallery-item, [data-testid='examples'] img").first.click()
    _set_steps(panel, 2)
    panel.get_by_role("button", name="Generate").click()
    line = _wait_text(page.locator("#pose-latency"), r"Generation")
    assert re.search(r"OpenVINO [\w+ ]+ [\d.]+ ms", line) and "2 steps" in line, line
    page.screenshot(path=SHOTS / "pose.png", full_page=True)


def test_image_tabs_run_both_backends_side_by_side(page):
    for tab, latency in (("SD-ToMe-INT8", "sd-latency"), ("ControlNet pose", "pose-latency")):
        panel = _open(page, tab)
        if tab == "ControlNet pose":
            panel.locator(".gallery-item, button.gallery-item, [data-testid='examples'] img").first.click()
        _set_steps(panel, 2)
        panel.get_by_role("radio", name="Both", exact=True).check()
        panel.get_by_role("button", name="Generate").click()
        panel.get_by_text("OpenVINO (left) · PyTorch (right)").first.wait_for()  # the label of a Both result
        line = _wait_text(page.locator(f"#{latency}"), r"OpenVINO .* · PyTorch fp32 [\d.]+ ms")
        assert re.search(r"OpenVINO [\d.]+× (faster|slower)", line), line
        page.screenshot(path=SHOTS / f"both-{latency.split('-')[0]}.png", full_page=True)
        panel.get_by_role("radio", name="OpenVINO", exact=True).check()


def test_benchmarks_tab_measures_on_this_machine(page):
    panel = _open(page, "Benchmarks")
    assert "Measured by the project" in panel.inner_text()
    panel.get_by_role("button", name="Measure on this machine").click()
    result = _wait_text(page.locator("#measure-result"), r"OpenVINO speed-up")
    assert "Measured just now on this machine" in result and result.count("×") >= 3, result
    page.screenshot(path=SHOTS / "benchmarks.png", full_page=True)


def test_a_url_opens_one_tab_with_its_text_filled(page):
    url = page.url.split("?")[0]
    page.goto(f"{url}?tab=classification&text=Embedded+in+a+post&labels=news,+sport&backend=Both&only=1")
    panel = page.get_by_role("tabpanel")
    panel.get_by_role("button", name="Classify").wait_for()
    page.wait_for_function(
        "() => [...document.querySelectorAll('textarea')].some(t => t.value === 'Embedded in a post')"
    )
    text, labels = panel.get_by_role("textbox").all()[:2]
    assert text.input_value() == "Embedded in a post" and labels.input_value() == "news, sport"
    assert panel.get_by_role("radio", name="Both", exact=True).is_checked()
    page.screenshot(path=SHOTS / "embed-classification.png", full_page=True)
    assert not page.get_by_role("tab", name="Translation").is_visible()  # only=1: the other tabs are hidden
    assert not page.get_by_text("The same request through an OpenVINO-compiled model").is_visible()
    page.goto(url)
    page.get_by_role("tab", name="Translation").wait_for()


WATCH = """([selector, attribute]) => {
    window.watched = [];
    window.watcher = setInterval(() => {
        const el = document.querySelector(selector);
        const progress = [...document.querySelectorAll('.progress-text, .meta-text, .progress-level-inner')]
            .map(e => e.innerText).join(' ');
        window.watched.push([el ? String(el[attribute]) : '', progress]);
    }, 20);
}"""


def _watch(page, selector: str, attribute: str) -> None:
    """Record `selector`'s `attribute` and the progress text every 20 ms, until `_watched`."""
    page.evaluate(WATCH, [selector, attribute])


def _changes(page, elem_id: str, before: str) -> None:
    """Wait until the latency line `elem_id` says something other than `before` (the request ended)."""
    page.wait_for_function("([id, before]) => document.getElementById(id).innerText !== before", arg=[elem_id, before])


def _watched(page) -> list[tuple[str, str]]:
    return page.evaluate("() => { clearInterval(window.watcher); return window.watched; }")


def test_translation_streams_tokens_with_their_rate(page):
    panel = _open(page, "Translation")
    panel.get_by_role("radio", name="PyTorch", exact=True).check()
    box = panel.locator("input[type=number]").first  # max new tokens
    box.fill("256")
    box.press("Enter")
    _watch(page, "#translation-output textarea", "value")
    before = page.locator("#translation-latency").inner_text()
    panel.get_by_role("button", name="Translate").click()
    _changes(page, "translation-latency", before)
    page.wait_for_timeout(300)
    final = page.locator("#translation-output textarea").input_value()
    seen = _watched(page)
    partial = {text for text, _ in seen if text and text != final and final.startswith(text.strip())}
    assert partial, "no partial text before the end"
    assert any("tokens/s" in progress for _, progress in seen), {p for _, p in seen}
    page.screenshot(path=SHOTS / "streaming.png", full_page=True)
    panel.get_by_role("radio", name="OpenVINO", exact=True).check()
    box.fill("64")
    box.press("Enter")


def test_a_preview_appears_during_a_generation(page):
    panel = _open(page, "SD-ToMe-INT8")
    panel.get_by_role("radio", name="PyTorch", exact=True).check()
    _set_steps(panel, 12)
    _watch(page, "#sd-image img", "naturalWidth")
    before = page.locator("#sd-latency").inner_text()
    panel.get_by_role("button", name="Generate").click()
    _changes(page, "sd-latency", before)
    page.wait_for_timeout(300)
    seen = _watched(page)
    widths = [width for width, _ in seen]
    assert str(PREVIEW_SIDE) in widths, set(widths)  # a preview, before the 64×64 image of the tiny model
    assert any(re.search(r"ms per step", progress) for _, progress in seen), {p for _, p in seen}
    assert widths[-1] == "64", set(widths)
    page.screenshot(path=SHOTS / "preview.png", full_page=True)
    panel.get_by_role("radio", name="OpenVINO", exact=True).check()


def test_system_tab_lists_every_model(page, services):
    panel = _open(page, "System")
    text = _wait_text(panel, "Models")
    for dual in services.models.values():
        assert dual.spec.title in text and dual.resolved.source.value in text
    page.screenshot(path=SHOTS / "system.png", full_page=True)


def test_app_works_inside_an_iframe(page):
    """Blog posts embed the app in an iframe: it must render and answer there too."""
    url = page.url
    page.set_content(f'<iframe src="{url}" width="1200" height="850" title="demo"></iframe>')
    frame = page.frame_locator("iframe")
    frame.get_by_role("tab", name="Classification").click()
    frame.get_by_role("tabpanel").get_by_role("button", name="Classify").click()
    frame.locator("#classify-latency").filter(has_text=re.compile(r"OpenVINO INT8( weights)? [\d.]+ ms")).wait_for()
    page.screenshot(path=SHOTS / "iframe.png")
    page.goto(url)
