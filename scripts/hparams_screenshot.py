"""A screenshot of TensorBoard's HParams tab for a sweep folder (docs/training.md's picture).

TensorBoard runs on 127.0.0.1 only (a free port), headless Chromium loads ``#hparams`` through selenium (Debian's
``chromium`` and ``chromium-driver``, as the app's browser test), ticks the hyper-parameters and metrics to show
(TensorBoard ticks the first five hyper-parameters by name), picks the view and writes a small PNG::

    uv run python scripts/hparams_screenshot.py outputs/multiruns/train/<time> docs/img/hparams_margin_sweep.png \
        --show margin --hide arch.weights arch.freeze data.test_fold --metrics result/fold_accuracy result/auc
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM = os.environ.get("FACEMATCH_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FACEMATCH_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
VIEWS = {"table": "TABLE VIEW", "parallel": "PARALLEL COORDINATES VIEW", "scatter": "SCATTER PLOT MATRIX VIEW"}

# Every element under document, through open shadow roots (TensorBoard's HParams tab is Polymer).
DEEP = """
const all = []; const walk = (root) => { for (const el of root.querySelectorAll('*')) { all.push(el);
  if (el.shadowRoot) walk(el.shadowRoot); } }; walk(document);
"""
CHECKBOXES = DEEP + """
return all.filter(el => el.tagName === 'PAPER-CHECKBOX' && el.closest && el.getRootNode().host &&
  el.getRootNode().host.tagName === 'TF-HPARAMS-QUERY-PANE').map(el => [el.textContent.trim(), !!el.checked]);
"""
TOGGLE = DEEP + """
const el = all.find(el => el.tagName === 'PAPER-CHECKBOX' && el.textContent.trim() === arguments[0] &&
  el.getRootNode().host && el.getRootNode().host.tagName === 'TF-HPARAMS-QUERY-PANE');
if (!el) return false; el.click(); return true;
"""
TAB = DEEP + """
const el = all.find(el => el.tagName === 'PAPER-TAB' && el.textContent.trim().toUpperCase() === arguments[0]);
if (!el) return false; el.click(); return true;
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"error: TensorBoard did not answer at {url} within {seconds:.0f} s")
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("logdir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--show", nargs="*", default=[], help="hyper-parameters to tick")
    ap.add_argument("--hide", nargs="*", default=[], help="hyper-parameters to untick")
    ap.add_argument("--metrics", nargs="*", default=None, help="the metrics to keep ticked (default: all)")
    ap.add_argument("--view", choices=sorted(VIEWS), default="table")
    ap.add_argument("--size", default="1400,900", help="window size W,H")
    args = ap.parse_args(argv)
    if not args.logdir.is_dir():
        raise SystemExit(f"error: no such sweep folder: {args.logdir}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    port = free_port()
    board = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(args.logdir), "--host",
                              "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver = None
    try:
        wait_http(f"http://127.0.0.1:{port}/data/plugins_listing", 120)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*FLAGS, f"--window-size={args.size}", f"--user-data-dir={tempfile.mkdtemp()}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        driver.get(f"http://127.0.0.1:{port}/#hparams")
        deadline = time.monotonic() + 60
        while not (boxes := dict(driver.execute_script(CHECKBOXES))) or not set(args.show) <= set(boxes):
            if time.monotonic() > deadline:
                raise SystemExit(f"error: the HParams tab shows no {sorted(set(args.show) - set(boxes))} "
                                 f"(it has {sorted(boxes)})")
            time.sleep(1)
        wanted = {**{name: True for name in args.show}, **{name: False for name in args.hide}}
        if args.metrics is not None:
            wanted.update({name: name in args.metrics for name in boxes if name.startswith("result/")
                           or "/" in name})
        for name, on in wanted.items():
            if name in boxes and boxes[name] != on:
                driver.execute_script(TOGGLE, name)
        if args.view != "table" and not driver.execute_script(TAB, VIEWS[args.view]):
            raise SystemExit(f"error: no {VIEWS[args.view]} tab")
        time.sleep(3)  # the view redraws
        png = driver.get_screenshot_as_png()
    finally:
        if driver is not None:
            driver.quit()
        board.terminate()
        board.wait(30)
    from io import BytesIO

    from PIL import Image

    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.open(BytesIO(png)).convert("RGB").quantize(colors=64).save(args.out, optimize=True)
    print(f"{args.out}: {args.out.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
