"""The report of a run folder from someone else, opened in a real browser (headless Chromium driven by
Selenium, as in ``test_serve_browser.py``): script planted in every field of the folder (its name,
``log.jsonl`` keys, ``metrics.jsonl`` fields, ``config.json``, ``card.json``) never runs, and is
shown as text. Marked ``browser``; skipped without Chromium unless ``CI`` is set."""

import pytest
from test_report import FOLDER_PAYLOAD, PAYLOADS, hostile_run
from test_serve_browser import WAIT_S, browser  # noqa: F401 (the module's Chromium fixture)

from t2igan.report import build_report

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("how_many", [1, 2])
def test_no_script_from_a_run_folder_runs_in_the_report(tmp_path, browser, how_many):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    runs = [hostile_run(tmp_path / "a")]
    if how_many == 2:
        runs.append(hostile_run(tmp_path / "b", '"><svg onload=window.__xss=2>'))
    report = build_report(runs, tmp_path / "out")
    browser.get(report.html.resolve().as_uri())
    WebDriverWait(browser, WAIT_S).until(lambda d: d.execute_script("return document.readyState") == "complete")
    # the images load (nothing else does), then give any planted handler its chance
    WebDriverWait(browser, WAIT_S).until(lambda d: d.execute_script(
        "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"))
    browser.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
    assert browser.execute_script("return typeof window.__xss") == "undefined"
    assert browser.execute_script("return document.querySelectorAll('script, iframe, svg, a, object, embed').length") == 0
    handlers = browser.execute_script(
        "return [...document.querySelectorAll('*')].flatMap(e => [...e.attributes].map(a => a.name))"
        ".filter(n => n.startsWith('on'))")
    assert handlers == []
    images = browser.execute_script("return [...document.images].map(i => i.src.slice(0, 22))")
    assert images and set(images) == {"data:image/png;base64,"}
    text = browser.find_element(By.TAG_NAME, "body").get_attribute("textContent")
    for payload in PAYLOADS + [FOLDER_PAYLOAD]:
        assert payload in text, payload  # shown as the text it is
    assert FOLDER_PAYLOAD in browser.title
