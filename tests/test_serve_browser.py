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


def test_generate_interpolate_and_errors_in_the_browser(demo_url, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_S)
    browser.get(demo_url)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#caption textarea, #caption input"))
    assert "t2igan: tiny-dfgan" in browser.find_element(By.TAG_NAME, "h1").text

    caption = browser.find_element(By.CSS_SELECTOR, "#caption textarea, #caption input")
    caption.send_keys("a red circle on the left")
    browser.find_element(By.ID, "generate").click()
    wait.until(lambda d: loaded_images(d, "#images img") == 4)  # the default: 4 images

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
