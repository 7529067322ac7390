"""The Gradio page in a real browser: headless Chromium driven by Selenium, against a tiny DF-GAN.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (the system driver at
/usr/bin/chromedriver is used; nothing is downloaded) and the PyPI package ``selenium``. Without
them the test is skipped, saying what to install, unless the environment variable ``CI`` is set: in CI
a missing browser fails the test. Marked ``browser`` (``pytest -m "not browser"`` leaves it out). Set ``T2IGAN_DEMO_SCREENSHOT=path.png``
to keep a screenshot of the page with results.
"""

import os
import shutil
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest
from PIL import Image

from t2igan import Text2ImagePipeline
from t2igan.serve import serve

CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL_HINT = ("install them with: apt-get install -y chromium chromium-driver && "
                "pip install selenium")
WAIT_S = 60

pytestmark = pytest.mark.browser


def missing(what: str):
    """Skip (a developer machine without a browser) or, with ``CI`` set, fail: CI must run this test."""
    message = f"the browser test needs {what}; {INSTALL_HINT}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def demo_url(tiny_trained_run):
    pipe = Text2ImagePipeline.from_pretrained(tiny_trained_run, device="cpu")
    running = serve("tiny-dfgan", port=0, pipe=pipe)
    yield running.url
    running.close()


def make_browser(profile_dir, window="1200,1400"):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not Path(CHROMEDRIVER).is_file() or not (shutil.which("chromium") or shutil.which("chromium-browser")):
        missing(f"chromium and {CHROMEDRIVER}")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", f"--window-size={window}", f"--user-data-dir={profile_dir}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S)
    return driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing("the Python package selenium")
    driver = make_browser(tmp_path_factory.mktemp("chrome-profile"))
    yield driver
    driver.quit()


def loaded_images(driver, selector: str) -> int:
    """How many ``<img>`` under ``selector`` the browser has decoded (a real image, not a broken icon)."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].filter(i => i.complete && i.naturalWidth > 0).length",
        selector)


def test_generate_interpolate_and_errors_in_the_browser(demo_url, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_S)
    browser.get(demo_url)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#caption textarea, #caption input"))
    assert "t2igan: tiny-dfgan" in browser.find_element(By.TAG_NAME, "h1").text

    caption = browser.find_element(By.CSS_SELECTOR, "#caption textarea, #caption input")
    caption.send_keys("a red circle on the left zorblax")
    browser.find_element(By.ID, "generate").click()
    wait.until(lambda d: loaded_images(d, "#images img") == 4)  # the default: 4 images
    wait.until(lambda d: "zorblax" in d.find_element(By.ID, "notices").text)  # the unknown word, named
    # small images are magnified with sharp pixels, in tiles of a whole multiple of their size
    assert browser.execute_script(
        "return getComputedStyle(document.querySelector('#images img')).imageRendering") == "pixelated"
    # the grid is a download named after the seed: the captioned grid `t2igan sample` writes
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    browser.find_element(By.ID, "download").click()
    wait.until(lambda d: (tmp_path / "t2igan-seed0.png").is_file())
    assert Image.open(tmp_path / "t2igan-seed0.png").width > 4 * 32
    # the random seed button draws a seed the field shows
    seed_field = browser.find_element(By.CSS_SELECTOR, "#seed input")
    browser.find_element(By.ID, "seed-random").click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#seed input").get_attribute("value") not in ("", "0"))
    assert 0 < int(seed_field.get_attribute("value")) < 2**31
    # a new request clears the last one's notice
    caption.send_keys(Keys.CONTROL, "a")
    caption.send_keys("a red circle")
    browser.find_element(By.ID, "generate").click()
    wait.until(lambda d: "zorblax" not in d.find_element(By.ID, "notices").text)
    # the model card, folded until opened
    browser.find_element(By.XPATH, "//*[@id='model-card-box']//button[contains(., 'Model card')]").click()
    wait.until(lambda d: "0 by default (0: none)" in d.find_element(By.ID, "model-card").text
               or "by default (0: none)" in d.find_element(By.ID, "model-card").text)

    # the interpolation tab: one image per step (8 by default)
    browser.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Interpolate')]").click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#caption-a textarea, #caption-a input").is_displayed())
    browser.find_element(By.CSS_SELECTOR, "#caption-a textarea, #caption-a input").send_keys("a red circle")
    browser.find_element(By.CSS_SELECTOR, "#caption-b textarea, #caption-b input").send_keys("a blue square")
    browser.find_element(By.ID, "interpolate").click()
    wait.until(lambda d: loaded_images(d, "#interp-images img") == 8)

    shot = os.environ.get("T2IGAN_DEMO_SCREENSHOT")
    if shot:
        browser.save_screenshot(shot)

    # an empty caption: Gradio's error message with the app's text, no traceback
    browser.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Generate')]").click()
    caption = browser.find_element(By.CSS_SELECTOR, "#caption textarea, #caption input")
    caption.send_keys(Keys.CONTROL, "a")  # typed, so the page sees the change (clear() may not)
    caption.send_keys(Keys.DELETE)
    browser.find_element(By.ID, "generate").click()
    wait.until(lambda d: "the caption is empty" in d.find_element(By.TAG_NAME, "body").text)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Traceback" not in body and "T2IError" not in body

    # an example caption fills the field (the page's one direct call, through the server's guard)
    examples = browser.find_elements(By.CSS_SELECTOR, "button.gallery-item")
    assert examples and examples[1].text
    examples[1].click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#caption textarea, #caption input").get_attribute("value")
               == examples[1].text)
    # a seed of 10**400: the field cannot hold it; the app says what a seed may be, in one line
    seed = browser.find_element(By.CSS_SELECTOR, "#seed input")
    seed.send_keys(Keys.CONTROL, "a")
    seed.send_keys("1" + "0" * 400)
    browser.find_element(By.ID, "generate").click()
    wait.until(lambda d: "seed must be a whole number between 0 and 2147483647" in d.find_element(By.TAG_NAME, "body").text)
    assert "Traceback" not in browser.find_element(By.TAG_NAME, "body").text


def test_stream_tab_captions_an_uploaded_image(browser, tmp_path):
    """The bundled MirrorGAN's STREAM tab: the upload goes through the server's own upload route, the
    page previews the stored copy, and the caption is the one ``t2igan caption`` gives."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from t2igan.serve.app import DemoFunctions, Limits

    pipe = Text2ImagePipeline.from_pretrained("shapes-mirrorgan", device="cpu")
    running = serve("shapes-mirrorgan", port=0, pipe=pipe)
    try:
        wait = WebDriverWait(browser, WAIT_S)
        browser.get(running.url)
        tab = "//button[@role='tab' and contains(., 'STREAM')]"
        wait.until(lambda d: d.find_elements(By.XPATH, tab))
        browser.find_element(By.XPATH, tab).click()
        photo = tmp_path / "photo.png"
        Image.new("RGB", (64, 48), (20, 60, 220)).save(photo)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#stream-image input[type=file]"))
        browser.find_element(By.CSS_SELECTOR, "#stream-image input[type=file]").send_keys(str(photo))
        wait.until(lambda d: loaded_images(d, "#stream-image img") == 1)  # the preview of the stored copy
        browser.find_element(By.ID, "caption-image").click()
        field = "#stream-caption textarea, #stream-caption input"
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, field).get_attribute("value"))
        (stored,) = running.uploads.folder.glob("*.png")
        assert Image.open(stored).size == (64, 48)
        expected = DemoFunctions(pipe, Limits()).caption_image(str(photo), 1)
        assert browser.find_element(By.CSS_SELECTOR, field).get_attribute("value") == expected
    finally:
        running.close()
