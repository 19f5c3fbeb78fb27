"""The studio: its JSON API, and the page in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request

import pytest

from index.catalogue import Catalogue
from index.rerank import Reranker
from index.studio import Studio, serve
from tests.conftest import ITEMS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def server(tiny_model, tiny_ebrm_dir, tmp_path):
    from ebrm.model import EBRM

    cat = Catalogue.build(tiny_model, ITEMS, tmp_path / "ix")
    # a persistent QE cache, as `deepbow studio` opens it: used from the server's threads
    rr = Reranker(cat, EBRM.load(tiny_ebrm_dir, cache=tmp_path / "qe.sqlite"))
    studio = Studio(cat, rr, user="tester")
    srv = serve(studio, "127.0.0.1", 0)
    TOKEN[0] = studio.token
    yield f"http://127.0.0.1:{srv.server_address[1]}", cat
    srv.shutdown()


TOKEN = [""]


def call(url, body=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": "application/json",
                                          "X-Deepbow-Token": TOKEN[0]})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_api_search_edit_undo(server):
    base, cat = server
    st, res = call(f"{base}/api/search?q=" + urllib.request.quote("华为手机"))
    assert st == 200 and res["hits"] and res["hits"][0]["words"]
    assert "entities" in res["hits"][0]
    first = [h["id"] for h in res["hits"]]
    last = first[-1]
    st, rec = call(f"{base}/api/edit", {"op": "set", "query": "华为手机",
                                        "args": {"item": last, "word": "华为", "weight": 1.5}})
    after = [h["id"] for h in rec["figures"]["after"]]
    assert st == 200 and rec["by"] == "tester" and after.index(last) < first.index(last)
    st, res = call(f"{base}/api/search?q=" + urllib.request.quote("华为手机"))
    assert [h["id"] for h in res["hits"]] == after
    st, err = call(f"{base}/api/edit", {"op": "set", "args": {"item": "nope", "word": "华为",
                                                              "weight": 1}})
    assert st == 400 and "unknown item" in err["error"]
    st, err = call(f"{base}/api/edit", {"op": "scale", "args": {"word": "华为",
                                                                "factor": "lots"}})
    assert st == 400 and "number" in err["error"]
    st, _ = call(f"{base}/api/undo", {"seq": rec["seq"]})
    st, res = call(f"{base}/api/search?q=" + urllib.request.quote("华为手机"))
    assert [h["id"] for h in res["hits"]] == first
    st, log = call(f"{base}/api/log")
    assert [e["active"] for e in log["edits"]] == [False, True]
    st, res = call(f"{base}/api/search?q=" + urllib.request.quote("华为手机") + "&scorer=ebrm")
    assert st == 200 and res["scorer"] == "ebrm" and res["hits"]


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (shutil.which(CHROMIUM) and shutil.which(DRIVER)):
        pytest.skip("chromium / chromedriver not installed (.ci/run installs them)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield drv
    drv.quit()


@pytest.mark.browser
@pytest.mark.slow
def test_page_type_search_edit_see_order_change_undo(server, browser):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    base, cat = server
    wait = WebDriverWait(browser, 20, ignored_exceptions=[StaleElementReferenceException])
    browser.get(base + "/")

    def order():
        return browser.execute_script(
            "return [...document.querySelectorAll('.hit')].map((e) => e.dataset.id)")

    def click(css):
        def go(d):
            d.find_element(By.CSS_SELECTOR, css).click()
            return True
        wait.until(go)

    box = browser.find_element(By.ID, "q")
    box.send_keys("华为手机", Keys.ENTER)
    wait.until(lambda d: len(order()) >= 2)
    before = order()
    last = before[-1]
    # click a word of the last product and give it a large weight in that product
    click(f'.hit[data-id="{last}"] .word')
    wait.until(lambda d: d.find_element(By.ID, "editor").is_displayed())
    w = browser.find_element(By.ID, "ed-weight")
    w.clear()
    w.send_keys("1.5")
    browser.find_element(By.ID, "ed-set").click()
    wait.until(lambda d: order() and order() != before)
    assert order().index(last) < before.index(last)
    assert len(cat.editor.log()) == 1
    # the journal shows the edit; undo restores the order
    click("#journal button.undo")
    wait.until(lambda d: order() == before)
    assert browser.find_element(By.CSS_SELECTOR, "#journal li.undone")
    # a refused edit shows its reason and changes nothing
    click(f'.hit[data-id="{last}"] .word')
    w = browser.find_element(By.ID, "ed-factor")
    w.clear()
    w.send_keys("-3")
    browser.find_element(By.ID, "ed-scale").click()
    wait.until(lambda d: "factor" in d.find_element(By.ID, "error").text)
    assert order() == before
