"""Browser tests: the app served by a real HTTP server in a thread, driven by headless Chromium.

Needs the Debian packages chromium and chromium-driver (scripts/install.sh installs them); without
chromedriver every test here is skipped with the reason. Set CULTURELAB_E2E_SCREENSHOTS=DIR to keep a
PNG of each stage (desktop and phone) for looking at the layout.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from culturelab.platform.app import create_app
from culturelab.platform.config import TestConfig
from culturelab.platform.db import session_scope
from culturelab.platform.migrate import upgrade
from culturelab.platform.study import read_study
from culturelab.platform.study_load import load_study

from studykit import make_stimulus_set, write_study  # tests/platform, on pytest's pythonpath

CHROMIUM = os.environ.get("CULTURELAB_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CULTURELAB_CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver")
PHONE = {"width": 390, "height": 844, "pixelRatio": 3.0}
PHONE_UA = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0 Mobile Safari/537.36")




@dataclass
class Live:
    app: Flask
    url: str
    root: Path

    def load(self, **overrides) -> str:
        """Loads a study (overrides of studykit's default document); returns its slug."""
        slug = overrides.setdefault("slug", "motif-test")
        folder = self.root / slug
        folder.mkdir()
        # Every study shares one stimulus set (same bytes, so importing it again changes nothing).
        make_stimulus_set(folder / "stimuli", size=64)
        path = write_study(folder, **overrides)
        with session_scope(self.app) as session:
            load_study(session, read_study(path), folder, Path(self.app.config["MEDIA_DIR"]))
        return slug


@pytest.fixture(scope="session")
def chromium() -> None:
    """Skips the browser tests, before any server starts, where Chromium or its driver is missing."""
    if not (Path(CHROMEDRIVER).exists() and Path(CHROMIUM).exists()):
        pytest.skip(f"browser tests need {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium", reason="browser tests need selenium (pip install -e '.[dev]')")


@pytest.fixture(scope="session")
def live(chromium, tmp_path_factory) -> Iterator[Live]:
    """The app on 127.0.0.1 at an ephemeral port, with an SQLite database of its own."""
    root = tmp_path_factory.mktemp("e2e")
    config = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    app = create_app({**config, "DATABASE_URL": f"sqlite:///{root / 'e2e.sqlite3'}", "DATA_DIR": str(root / "data")})
    upgrade(app.extensions["culturelab.engine"])
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    thread.start()
    yield Live(app, f"http://127.0.0.1:{server.server_port}", root)
    server.shutdown()
    thread.join(5)
    app.extensions["culturelab.engine"].dispose()


@pytest.fixture
def browser(chromium, tmp_path) -> Iterator[Callable]:
    """Starts headless Chromium: browser() is a desktop window, browser(phone=True) a phone (390x844);
    ``language`` sets the languages the browser asks for (Accept-Language), e.g. "zh-CN,zh"."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers = []

    def start(phone: bool = False, language: str | None = None):
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--no-first-run",
                    "--disable-sync", "--disable-extensions", "--hide-scrollbars",
                    f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path, prefix='chromium-')}"):
            options.add_argument(arg)
        if language:
            options.add_experimental_option("prefs", {"intl.accept_languages": language})
        if phone:
            options.add_experimental_option("mobileEmulation", {"deviceMetrics": PHONE, "userAgent": PHONE_UA})
        else:
            options.add_argument("--window-size=1280,900")
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        driver.set_page_load_timeout(30)
        drivers.append(driver)
        return driver

    yield start
    for driver in drivers:
        driver.quit()


@pytest.fixture
def shoot() -> Callable:
    """shoot(driver, name) keeps a full-page PNG under $CULTURELAB_E2E_SCREENSHOTS (when set)."""
    folder = os.environ.get("CULTURELAB_E2E_SCREENSHOTS")

    def _shoot(driver, name: str) -> None:
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(Path(folder) / f"{name}.png"))

    return _shoot
