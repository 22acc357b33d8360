"""facematch-app: its endpoints in process (TestClient), then the page in a real headless Chromium (Debian's
``chromium`` + ``chromium-driver``): load it, upload two LFW photos, read the decision, take a screenshot;
a cross-identity pair, a non-image upload and a gallery search of three enrolled LFW people.

Screenshots go to the test's tmp dir and, when ``FACEMATCH_SCREENSHOT_DIR`` is set, there too."""

from __future__ import annotations

import os
import re
import shutil
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


BUSH_A = "George_W_Bush/George_W_Bush_0007.jpg"
BUSH_B = "George_W_Bush/George_W_Bush_0016.jpg"
POWELL = "Colin_Powell/Colin_Powell_0040.jpg"
PEIRSOL = "Aaron_Peirsol/Aaron_Peirsol_0001.jpg"
GALLERY_PEOPLE = ("George_W_Bush", "Colin_Powell", "Tony_Blair")  # their photos 1-3 enrolled
THRESHOLD = "0.37"
MAX_MB = "1"
CHROMIUM = os.environ.get("FACEMATCH_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FACEMATCH_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--window-size=1280,1700")


# ---------------------------------------------------------------------------------------------------
# the app, once per module: a 3-person gallery enrolled with facematch-gallery, the model loaded once

@pytest.fixture(scope="module")
def gallery_dir(lfw_root, mfn_weights, tmp_path_factory):
    from facematch.cli.gallery import main as gallery_main

    root = tmp_path_factory.mktemp("app_gallery")
    for name in GALLERY_PEOPLE:
        (root / "people" / name).mkdir(parents=True)
        for i in (1, 2, 3):
            shutil.copy(lfw_root / name / f"{name}_000{i}.jpg", root / "people" / name)
    assert gallery_main(["enroll", str(root / "people"), "--out", str(root / "gallery"), "--weights",
                         str(mfn_weights), "--no-progress"]) == 0
    return root / "gallery"


@pytest.fixture(scope="module")
def state(gallery_dir, mfn_weights):
    from facematch.app.server import build_parser, load_state

    return load_state(build_parser().parse_args(["--weights", str(mfn_weights), "--threshold", THRESHOLD,
                                                 "--gallery", str(gallery_dir), "--max-upload-mb", MAX_MB]))


@pytest.fixture(scope="module")
def client(state):
    from fastapi.testclient import TestClient

    from facematch.app.server import create_app

    with TestClient(create_app(state), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def photos(lfw_root):
    return {k: lfw_root / v for k, v in (("a", BUSH_A), ("b", BUSH_B), ("other", POWELL))}


def upload(path: Path, name: str | None = None, mime: str = "image/jpeg"):
    return (name or path.name, path.read_bytes(), mime)


def element(html: str, id_: str) -> str | None:
    """The text of the element with ``id_`` (our pages put plain text in these)."""
    m = re.search(rf'id="{id_}"[^>]*>([^<]*)<', html)
    return m.group(1) if m else None


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG that claims ``width`` x ``height`` pixels (a decompression bomb's header, nothing behind it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def assert_user_error(r, *words: str) -> str:
    assert r.status_code == 400, r.text[:500]
    msg = element(r.text, "error")
    assert msg and all(w in msg for w in words), msg
    assert "Traceback" not in r.text and 'id="compare-form"' in r.text  # the page again, forms included
    return msg


# ---------------------------------------------------------------------------------------------------
# endpoints in process

def test_compare_endpoint(client, photos):
    assert client.get("/").status_code == 200
    r = client.post("/compare", files={"photo1": upload(photos["a"]), "photo2": upload(photos["b"])})
    assert r.status_code == 200 and element(r.text, "decision") == "same person"
    assert element(r.text, "threshold") == f"threshold {THRESHOLD} (--threshold)"
    assert float(element(r.text, "similarity")) > 0.5
    assert 'id="figure"' in r.text and r.text.count("data:image/png;base64,") == 3  # the picture, two crops
    r = client.post("/compare", files={"photo1": upload(photos["a"]), "photo2": upload(photos["other"])})
    assert r.status_code == 200 and element(r.text, "decision") == "different people"
    assert client.get("/compare", follow_redirects=False).status_code == 303


def test_compare_user_errors(client, photos, tmp_path, lfw_root):
    """Each mistake: HTTP 400, the page again with one message naming the upload, never a traceback."""
    good = upload(photos["a"])
    assert_user_error(client.post("/compare", files={"photo1": ("notes.txt", b"not a photo", "text/plain"),
                                                     "photo2": good}), "notes.txt", "not an image")
    assert_user_error(client.post("/compare", files={"photo1": good, "photo2": ("empty.jpg", b"", "image/jpeg")}),
                      "empty.jpg", "empty")
    assert_user_error(client.post("/compare", files={"photo1": good}), "choose a file for the second photo")
    assert_user_error(client.post("/compare", data={"select": "largest"}), "choose a file for the first photo")
    big = b"\xff\xd8" + bytes(int(float(MAX_MB) * 2**20))  # just over the limit (the body passes the pre-check)
    assert_user_error(client.post("/compare", files={"photo1": good, "photo2": ("big.jpg", big, "image/jpeg")}),
                      "big.jpg", f"larger than the {MAX_MB} MB upload limit")
    huge = bytes(3 * 2**20)  # the whole body over what two photos may be: refused before it is parsed
    assert_user_error(client.post("/compare", files={"photo1": good, "photo2": ("huge.jpg", huge, "image/jpeg")}),
                      f"{MAX_MB} MB limit")
    assert_user_error(client.post("/compare", files={"photo1": good, "photo2": ("bomb.png", png_header(9000, 8000),
                                                                                "image/png")}),
                      "bomb.png is 9000x8000 pixels, over the 64,000,000-pixel limit")
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), (120, 160, 200)).save(blank)
    assert_user_error(client.post("/compare", files={"photo1": good, "photo2": upload(blank, mime="image/png")}),
                      "no face found in blank.png")
    crops = [np.asarray(Image.open(lfw_root / rel).convert("RGB"))[30:220, 30:220] for rel in (BUSH_A, PEIRSOL)]
    two = tmp_path / "two_faces.jpg"
    Image.fromarray(np.concatenate(crops, axis=1)).save(two, quality=95)
    r = client.post("/compare", files={"photo1": upload(two), "photo2": good})
    msg = assert_user_error(r, "two_faces.jpg", "several faces")
    assert "--select" not in msg  # the page's words, not the CLI's
    r = client.post("/compare", files={"photo1": upload(two), "photo2": good}, data={"select": "largest"})
    assert r.status_code == 200 and element(r.text, "decision")


def test_file_names_are_escaped(client):
    r = client.post("/compare", files={"photo1": ('<img src=x onerror=alert(1)>.txt', b"x", "text/plain"),
                                       "photo2": ("b.txt", b"y", "text/plain")})
    assert r.status_code == 400 and "<img src=x" not in r.text and "&lt;img src=x onerror=alert(1)&gt;" in r.text


def test_unexpected_error_is_generic(client, state, photos, monkeypatch, caplog):
    def broken(crops):
        raise RuntimeError("boom inside the model")

    monkeypatch.setattr(state.embedder, "views", broken)  # the one forward pass of a compare
    r = client.post("/compare", files={"photo1": upload(photos["a"]), "photo2": upload(photos["b"])})
    assert r.status_code == 500 and "something went wrong" in element(r.text, "error")
    assert "boom" not in r.text and "Traceback" not in r.text
    assert "boom inside the model" in caplog.text  # logged server-side, with its traceback


def test_search_endpoint(client, photos, tmp_path):
    r = client.post("/search", files={"photo": upload(photos["b"])}, data={"top_k": "3"})
    assert r.status_code == 200 and element(r.text, "identity-1") == "George_W_Bush"
    assert len(re.findall(r'class="match( below)?"', r.text)) == 3 and "Colin_Powell" in r.text and "Tony_Blair" in r.text
    assert element(r.text, "threshold") == f"threshold {THRESHOLD} (--threshold)"
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), (120, 160, 200)).save(blank)
    msg = assert_user_error(client.post("/search", files={"photo": upload(blank, mime="image/png")}),
                            "no face found in blank.png")
    assert "facematch-app-" not in msg  # the temporary file's path is not shown
    assert_user_error(client.post("/search", files={"photo": upload(photos["b"])}, data={"top_k": "0"}), "top K")
    assert_user_error(client.post("/search", data={"top_k": "3"}), "choose a file for the photo to search")


def test_main_uses_the_calibration_and_fails_fast(mfn_weights, photos, tmp_path, monkeypatch, capsys):
    """main(): the calibrated threshold (a calibration in $FACEMATCH_CALIBRATION_DIR) named on the page; missing
    weights, a missing gallery or a taken port stop with one line before anything is served."""
    from fastapi.testclient import TestClient

    from facematch.app import server
    from facematch.calibration.store import Calibration, write_sidecar
    from facematch.utils.io import sha256_file

    monkeypatch.setenv("FACEMATCH_CALIBRATION_DIR", str(tmp_path / "cal"))
    write_sidecar(Calibration(sha256_file(mfn_weights), {"far_1e-3": {"threshold": 0.3, "far": 0.001, "tar": 0.95}},
                              "far_1e-3", {"arch": "mobilefacenet", "flip": "concat"}, {"pairs": "lfw/pairs.txt"}))
    served = {}

    class FakeServer:
        def __init__(self, app):
            served["app"] = app

        def run(self, sockets):
            served["port"] = sockets[0].getsockname()[1]
            sockets[0].close()

    monkeypatch.setattr(server, "make_server", lambda app: FakeServer(app))
    assert server.main(["--weights", str(mfn_weights), "--port", "0"]) == 0
    out = capsys.readouterr().out
    assert f"http://127.0.0.1:{served['port']}/" in out and "calibrated, far_1e-3" in out
    r = TestClient(served["app"]).post("/compare", files={"photo1": upload(photos["a"]), "photo2": upload(photos["b"])})
    assert element(r.text, "threshold") == "threshold 0.3000 (calibrated, far_1e-3 on pairs.txt: FAR 0.0010, TAR 0.9500)"
    assert "search-form" not in r.text  # no --gallery, no search form

    def fails(argv, code, words):
        with pytest.raises(SystemExit) as exc:
            server.main(argv)
        err = capsys.readouterr().err.strip()
        assert exc.value.code == code and err.startswith("error: ") and words in err and len(err.splitlines()) == 1, err

    fails(["--weights", str(tmp_path / "none.ckpt"), "--port", "0"], 6, "weights file not found")
    fails(["--weights", str(mfn_weights), "--port", "0", "--gallery", str(tmp_path / "nope")], 2, "gallery not found")
    taken = server.listening_socket("127.0.0.1", 0)
    try:
        fails(["--weights", str(mfn_weights), "--port", str(taken.getsockname()[1])], 2, "cannot listen on 127.0.0.1")
    finally:
        taken.close()


# ---------------------------------------------------------------------------------------------------
# the page in headless Chromium

@pytest.fixture(scope="module")
def app_url(state):
    from facematch.app.server import create_app, listening_socket, make_server

    sock = listening_socket("127.0.0.1", 0)
    server = make_server(create_app(state))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "facematch-app did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    if missing:
        pytest.skip(f"headless browser test: {', '.join(missing)} not found; apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    """A PNG of the page (the tmp dir, and $FACEMATCH_SCREENSHOT_DIR when set)."""
    out = tmp_path / name
    assert driver.save_screenshot(str(out))
    if os.environ.get("FACEMATCH_SCREENSHOT_DIR"):
        keep = Path(os.environ["FACEMATCH_SCREENSHOT_DIR"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(out, keep / name)
    with Image.open(out) as im:
        assert im.width >= 800 and im.height >= 600
    return out


def submit(driver, url: str, form: str, files: dict, wait_for: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url + "/")
    for field, path in files.items():
        driver.find_element(By.ID, field).send_keys(str(path))
    driver.find_element(By.ID, f"{form}-submit").click()
    WebDriverWait(driver, 120).until(EC.presence_of_element_located((By.CSS_SELECTOR, wait_for)))
    return lambda id_: driver.find_element(By.ID, id_).text


def test_browser_compare(browser, app_url, photos, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(app_url + "/")
    assert browser.title == "facematch" and browser.find_element(By.ID, "compare-form").is_displayed()
    text = submit(browser, app_url, "compare", {"photo1": photos["a"], "photo2": photos["b"]}, "#decision")
    assert text("decision") == "same person"
    assert text("threshold") == f"threshold {THRESHOLD} (--threshold)" and float(text("similarity")) > 0.5
    width = browser.execute_script("return document.getElementById('figure').naturalWidth")
    assert width > 600  # the side-by-side picture decoded from its data: URL
    screenshot(browser, tmp_path, "app_compare_same.png")

    text = submit(browser, app_url, "compare", {"photo1": photos["a"], "photo2": photos["other"]}, "#decision")
    assert text("decision") == "different people"
    screenshot(browser, tmp_path, "app_compare_different.png")

    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    text = submit(browser, app_url, "compare", {"photo1": notes, "photo2": photos["b"]}, "#error")
    assert "notes.txt is not an image file" in text("error") and "Traceback" not in browser.page_source
    screenshot(browser, tmp_path, "app_compare_error.png")


def test_browser_search(browser, app_url, photos, tmp_path):
    text = submit(browser, app_url, "search", {"photo": photos["b"]}, "#identity-1")
    assert text("identity-1") == "George_W_Bush" and text("threshold") == f"threshold {THRESHOLD} (--threshold)"
    n_crops = browser.execute_script(
        "return [...document.querySelectorAll('.match img')].filter(i => i.naturalWidth > 0).length")
    assert n_crops == 3  # the three enrolled identities, each with its enrolled crop
    screenshot(browser, tmp_path, "app_search.png")
