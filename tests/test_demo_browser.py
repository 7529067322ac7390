"""The web demo in a real browser: headless Chromium driven by Selenium, against a tiny DF-GAN.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (the system driver at
/usr/bin/chromedriver is used; nothing is downloaded) and the PyPI package ``selenium``. Without
them the test is skipped, saying what to install, unless the environment variable ``CI`` is set: in CI
a missing browser fails the test. Marked ``browser`` (``pytest -m "not browser"`` leaves it out).
Set ``T2IGAN_DEMO_SCREENSHOT=path.png`` to keep a screenshot of the page with results.
"""

import os
import shutil
import threading
from pathlib import Path

import pytest

from t2igan import Text2ImagePipeline
from t2igan.config import resolve_config
from t2igan.demo import make_server
from t2igan.trainer import Trainer

CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL_HINT = ("install them with: apt-get install -y chromium chromium-driver && "
                "pip install selenium")
WAIT_S = 30

pytestmark = pytest.mark.browser


def missing(what: str):
    """Skip (a developer machine without a browser) or, with ``CI`` set, fail: CI must run this test."""
    message = f"the browser test needs {what}; {INSTALL_HINT}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


TINY = [
    "data.image_size=32", "data.train_args={num_images: 64}", "data.test_args={num_images: 16}",
    "model.nf=8", "model.text_emb_dim=16", "model.text_hidden_dim=16", "train.batch_size=8",
    "train.max_steps=2", "train.sample_every=100", "train.checkpoint_every=100", "train.num_sample_captions=4",
]


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    Trainer(resolve_config("dfgan-shapes", TINY), run, progress=False).fit()
    pipe = Text2ImagePipeline.from_pretrained(run, device="cpu")
    srv = make_server(pipe, "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("the Python package selenium")
    if not Path(CHROMEDRIVER).is_file() or not (shutil.which("chromium") or shutil.which("chromium-browser")):
        missing(f"chromium and {CHROMEDRIVER}")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1100,1000",
                f"--user-data-dir={tmp_path_factory.mktemp('chrome-profile')}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


def test_generate_in_the_browser_then_error_for_empty_caption(browser, demo_url):  # browser first: skip before training
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_S)
    browser.get(demo_url)
    wait.until(ec.text_to_be_present_in_element((By.ID, "model-info"), "model: dfgan"))

    caption = browser.find_element(By.ID, "caption")
    caption.send_keys("a red circle on the left")
    n = browser.find_element(By.ID, "n")
    n.clear()
    n.send_keys("6")
    browser.find_element(By.ID, "generate").click()

    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .grid img")) == 6)
    images = browser.find_elements(By.CSS_SELECTOR, "#results .grid img")
    assert all(img.get_attribute("src").startswith("data:image/png;base64,") for img in images)
    # the PNGs decoded in the browser: a real image, not a broken icon
    wait.until(lambda d: all(d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) == 32
                             for img in d.find_elements(By.CSS_SELECTOR, "#results .grid img")))
    assert images[0].get_attribute("alt") == "a red circle on the left"
    assert not browser.find_element(By.ID, "error").is_displayed()

    # the interpolation view: one image per step
    browser.find_element(By.ID, "caption-a").send_keys("a red circle")
    browser.find_element(By.ID, "caption-b").send_keys("a blue square")
    browser.find_element(By.ID, "interpolate").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#interp-results img")) == 8)
    assert not browser.find_element(By.ID, "interp-error").is_displayed()

    shot = os.environ.get("T2IGAN_DEMO_SCREENSHOT")
    if shot:
        browser.save_screenshot(shot)

    # an empty caption: the server's 400 message shows on the page and the old results are cleared
    caption.clear()
    browser.find_element(By.ID, "generate").click()
    error = browser.find_element(By.ID, "error")
    wait.until(ec.visibility_of(error))
    assert "empty" in error.text
    assert browser.find_elements(By.CSS_SELECTOR, "#results img") == []

    # unknown words are named
    caption.send_keys("zorblax quuxish")
    browser.find_element(By.ID, "generate").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "error"), "zorblax, quuxish"))
