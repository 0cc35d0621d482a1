"""End to end: `cameras app` served on loopback, driven by Playwright in Debian's headless Chromium.

Skipped, with the reason, where Gradio, Playwright or the system Chromium is missing
(`.ci/run` installs Chromium; `make` installs the Python side). Set CAMERAS_APP_SCREENSHOT
to a path to keep the screenshot (the README's is made this way).
"""

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytest.importorskip("gradio", reason="the app extra is not installed: pip install 'cameras[app]'")
pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install playwright")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no system Chromium (apt-get install chromium)")

BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("app") / "app.log"
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "cameras", "app", "--port", str(port), "--max-upload-mb", "1"],
                                stdout=fh, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"the app did not start:\n{log.read_text()}") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 1000})
        pg.set_default_timeout(120_000)
        pg.goto(app_url)
        yield pg
        browser.close()


def status_has(page, text):
    page.wait_for_function(f"document.querySelector('#status').innerText.includes({text!r})")
    return page.locator("#status").inner_text()


def upload(page, path):
    clear = page.locator("#upload button[aria-label=Clear]")
    if clear.count():
        clear.click()
    page.locator("#upload input[type=file]").set_input_files(str(path))


def choose_methods(page, names):
    """Tick exactly these methods."""
    for label in page.locator("#methods label").all():
        if label.locator("input").is_checked() != (label.inner_text().strip() in names):
            label.click()


def image_bytes(page, i):
    return page.request.get(page.locator("#overlays img").nth(i).get_attribute("src")).body()


def test_two_classes_give_two_different_overlays(page, sample_dir):
    upload(page, sample_dir / "chelsea.jpg")
    assert "top class 285 · Egyptian cat" in status_has(page, "top class")
    assert page.locator("#preview img").count() == 1 and page.locator("#upload img").count() == 0  # one preview
    page.locator("#classes input").click()
    page.keyboard.type("tabby")  # filter by name
    page.locator("[role=option]", has_text="281 · tabby").first.click()
    page.keyboard.press("Escape")
    page.locator("#scales textarea, #scales input").first.fill("224,324,424,524")
    page.locator("#run").click()
    assert "Done: 2 maps" in status_has(page, "Done")
    imgs = page.locator("#overlays img")
    assert imgs.count() == 2
    pics = [np.asarray(Image.open(io.BytesIO(image_bytes(page, i))).convert("RGB")) for i in range(2)]
    assert pics[0].shape == pics[1].shape == (300, 451, 3)
    assert np.abs(pics[0].astype(int) - pics[1].astype(int)).mean() > 3  # the two classes' maps differ
    details = page.locator("#details").inner_text()
    assert "285 · Egyptian cat" in details and "281 · tabby" in details and "224, 324, 424, 524" in details
    names = page.locator("#downloads").inner_text()
    for stem in ("chelsea.cameras.285", "chelsea.cameras.281"):
        assert names.count(stem) == 2  # .npy and .png
    shot = page.screenshot(full_page=True)
    if os.environ.get("CAMERAS_APP_SCREENSHOT"):
        Path(os.environ["CAMERAS_APP_SCREENSHOT"]).write_bytes(shot)
    # the opacity slider re-draws the same maps without recomputing them: by dragging…
    before = imgs.nth(0).get_attribute("src")
    box = page.locator("#alpha input[type=range]").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.95, box["y"] + box["height"] / 2)
    page.wait_for_function("(b) => document.querySelector('#overlays img').src !== b", arg=before)
    assert "Done: 2 maps" in page.locator("#status").inner_text()
    # …or by typing a value and pressing Enter
    before, before_px = imgs.nth(0).get_attribute("src"), image_bytes(page, 0)
    number = page.locator("#alpha input[type=number]")
    number.fill("0.2")
    number.press("Enter")
    page.wait_for_function("(b) => document.querySelector('#overlays img').src !== b", arg=before)
    assert image_bytes(page, 0) != before_px and "Done: 2 maps" in page.locator("#status").inner_text()


def test_grid_of_methods_by_classes_whole_images_captions_and_bad_values(page, sample_dir):
    """Rows are methods (fastest first), columns classes; every image whole, inside the page, captioned; a bad
    value gives a red error and keeps the maps; the class search adds near misses."""
    upload(page, sample_dir / "coffee.png")
    status_has(page, "top class 967")
    page.locator("#class-search textarea, #class-search input").first.fill("cupp")
    page.keyboard.press("Enter")
    assert "Added 968 · cup (no class is called 'cupp'" in status_has(page, "Added")
    assert page.locator("#classes .token").count() == 2
    choose_methods(page, ["cameras", "gradcam"])
    page.locator("#scales textarea, #scales input").first.fill("224,324")
    page.locator("#run").click()
    assert "Done: 4 maps" in status_has(page, "Done")
    layout = page.evaluate("""() => {
        const wrap = document.querySelector('#overlays .grid-wrap').getBoundingClientRect();
        return [...document.querySelectorAll('#overlays .thumbnail-item')].map(t => {
            const img = t.querySelector('img'), b = img.getBoundingClientRect();
            const cap = t.querySelector('.caption-label'), c = cap.getBoundingClientRect();
            return {caption: cap.innerText, ratio: img.naturalWidth / img.naturalHeight, shown: b.width / b.height,
                    left: b.left, top: b.top, inside: b.top >= wrap.top - 1 && b.bottom <= wrap.bottom + 1,
                    captionBelow: c.top >= b.bottom - 1 && c.height > 0};
        });
    }""")
    assert [t["caption"] for t in layout] == ["gradcam · espresso (967)", "gradcam · cup (968)",
                                             "cameras · espresso (967)", "cameras · cup (968)"]
    assert all(abs(t["shown"] - 1.5) < 0.02 and abs(t["ratio"] - 1.5) < 1e-6 for t in layout)  # 600×400, uncropped
    assert all(t["inside"] and t["captionBelow"] for t in layout)
    assert layout[0]["top"] == layout[1]["top"] < layout[2]["top"] == layout[3]["top"]  # 2 rows
    assert layout[0]["left"] == layout[2]["left"] < layout[1]["left"] == layout[3]["left"]  # 2 columns
    shown = [image_bytes(page, i) for i in range(4)]
    page.locator("#scales textarea, #scales input").first.fill("900,224")
    page.locator("#run").click()
    text = status_has(page, "Error")
    assert "scales must be strictly increasing, got [900, 224] (the maps below are from the previous run)" in text
    color = page.evaluate("getComputedStyle(document.querySelector('#status .cameras-error')).backgroundColor")
    assert color == "rgb(253, 236, 234)"  # a red box, unlike the plain status line
    assert [image_bytes(page, i) for i in range(4)] == shown  # the same overlays
    assert page.locator("#details tr").count() == 5  # the table of the previous run is still there


def test_slow_method_shows_progress_and_cancels(page, sample_dir):
    upload(page, sample_dir / "coffee.png")
    status_has(page, "top class 967")
    choose_methods(page, ["rise"])
    page.locator("#run").click()
    page.wait_for_function("document.querySelector('#overlays').innerText.includes('RISE masks')")
    # one progress display, on the overlays
    trackers = page.evaluate("""() => [...document.querySelectorAll('[data-testid=status-tracker]')]
        .filter(t => !t.classList.contains('hide') && t.innerText.trim()).map(t => t.closest('[id]').id)""")
    assert trackers == ["overlays"]
    page.locator("#cancel").click()
    assert "Cancelled after 0 of 1 maps" in status_has(page, "Cancelled")
    choose_methods(page, ["gradcam"])
    page.locator("#run").click()  # the app is free again at once
    assert "Done: 1 map in" in status_has(page, "Done")


def test_bad_uploads_get_a_message(page, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("hello, this is text")
    upload(page, bad)
    assert "notes.jpg is not an image" in status_has(page, "Error")
    big = tmp_path / "huge.png"
    big.write_bytes(os.urandom(1536 * 1024))
    upload(page, big)
    assert "huge.png is 1.5 MB, over the 1.0 MB upload limit" in status_has(page, "upload limit")
    assert page.locator("#classes .token").count() == 0  # nothing left from the bad upload


def test_picking_a_sample_loads_it_at_once(page):
    page.locator("#sample input").click()
    page.locator("[role=option]", has_text="coffee").first.click()
    assert "coffee.jpg: 600×400; top class 967 · espresso" in status_has(page, "coffee.jpg: 600")
    page.locator("#sample input").click()
    page.locator("[role=option]", has_text="chelsea").first.click()
    assert "chelsea.jpg: 451×300; top class 285 · Egyptian cat" in status_has(page, "chelsea.jpg: 451")
    assert page.locator("#classes .token").count() == 1
    choose_methods(page, ["cameras"])
    page.locator("#scales textarea, #scales input").first.fill("224,5000")
    page.locator("#run").click()
    assert "CAMERAS scales go up to 2048 here (got 5000)" in status_has(page, "Error")
