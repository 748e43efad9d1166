"""Headless Chromium for the page tests: Debian's ``chromium`` driven by Selenium through Debian's
``chromium-driver`` (both installed by ``.ci/run``); nothing is downloaded at test time.

Screenshots go to ``<repo>/test-artifacts/`` (gitignored), where CI can collect them.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator["object"]:
    """A headless Chromium WebDriver; skips the test when the browser or its driver is absent."""
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: "object", name: str, full_page: bool = True) -> Path:
    """Save a PNG of the page under test-artifacts/ (the whole page height when ``full_page``)."""
    ARTIFACTS.mkdir(exist_ok=True)
    if full_page:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        width = driver.execute_script("return window.innerWidth")
        driver.set_window_size(width, min(int(height) + 160, 6000))
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served(args: list[str], cwd: Path, port: int, timeout: float = 120.0) -> Iterator[str]:
    """Run ``elliot-visual serve`` on 127.0.0.1:``port`` in a subprocess; yields its base URL."""
    log = (cwd / f"serve-{port}.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "elliot_visual", "serve", *args, "--host", "127.0.0.1",
                                "--port", str(port)], cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(f"serve exited with {process.returncode}:\n{(cwd / f'serve-{port}.log').read_text()}")
            try:
                urllib.request.urlopen(base + "/api/features", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("serve did not answer within the timeout") from None
                time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
