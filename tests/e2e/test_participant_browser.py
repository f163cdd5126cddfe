"""A participant's journey in a real browser (issues 2 and 8): the study link, language, consent, background,
instructions and practice, the trials by mouse, keyboard and touch, resuming, and the completion page.

What the browser did is checked against what the server stored, through the export (Contract 2); what the
browser received is checked for anything that would tell a participant an image's condition.
"""

from __future__ import annotations

import csv
import json
import re
import urllib.request
from pathlib import Path

import pytest

from culturelab.platform.bots import instructed_answer, pixels_sha256
from culturelab.platform.db import session_scope
from culturelab.platform.export import export_study
from culturelab.platform.ownership import add_member
from culturelab.platform.researcher import create_researcher

from bot import Bot  # tests/platform, on pytest's pythonpath

pytestmark = pytest.mark.browser

WAIT = 15


def _wait(driver, condition, timeout: float = WAIT):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # An element read while the page reloads (after the last answer) is stale: look again.
    return WebDriverWait(
        driver, timeout, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
    ).until(condition)


def _css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def _all(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def _visible(driver, selector: str):
    def check(d):
        found = _all(d, selector)
        return found[0] if found and found[0].is_displayed() else False

    return _wait(driver, check)


def _keys(driver, *keys) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(*keys).perform()


def _no_sideways_scroll(driver) -> None:
    overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the screen"


def _export(live, slug: str, out: Path) -> dict[str, list[dict]]:
    with session_scope(live.app) as session:
        export_study(session, slug, out, "csv")
    return {name: list(csv.DictReader((out / f"{name}.csv").open(encoding="utf-8")))
            for name in ("participants", "stimuli", "responses")}


# --- the stages, as a participant goes through them -------------------------------------------------

def choose_language(driver, live, slug: str, language: str, query: str = "") -> None:
    driver.get(f"{live.url}/s/{slug}{query}")
    _visible(driver, f"[data-language={language}]").click()


def agree(driver, shoot=None, name: str = "") -> None:
    button = _visible(driver, "#consent-yes")
    if shoot:
        shoot(driver, name)
    button.click()


def fill_background(driver, group: str = "east_asian", shoot=None, name: str = "") -> None:
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    _visible(driver, "#background")
    _css(driver, f"input[name=culture_group][value={group}]").click()
    Select(_css(driver, "select[name=country_of_birth]")).select_by_value("JP")
    Select(_css(driver, "select[name=country_of_residence]")).select_by_value("GB")
    _css(driver, "#language-filter").send_keys("ja")
    _visible(driver, "input[name=languages][value=ja]").click()
    _css(driver, "#language-filter").send_keys(Keys.BACKSPACE, Keys.BACKSPACE)
    driver.execute_script("arguments[0].scrollIntoView()", _css(driver, "input[name=languages][value=en]"))
    _css(driver, "input[name=languages][value=en]").click()
    _css(driver, "input[name=age]").send_keys("34")
    _css(driver, "input[name=gender][value=self]").click()
    _css(driver, "input[name=gender_text]").send_keys("genderqueer")
    _css(driver, "input[name=art_training][value='2']").click()
    if shoot:
        shoot(driver, name)
    _css(driver, "#background button[type=submit]").click()


def current_trial(driver, after: str | None = None) -> dict:
    """Waits for a trial that is on screen and ready for an answer (a different one than `after`)."""

    def ready(d):
        section = _all(d, "#trial")
        if not section or not section[0].is_displayed() or section[0].get_attribute("data-ready") != "true":
            return False
        index = section[0].get_attribute("data-index")
        return index if index != after else False

    index = _wait(driver, ready)
    return {"index": index, "kind": _css(driver, "#trial").get_attribute("data-kind"),
            "question": _css(driver, "#question").text}


def answer(driver, trial: dict, how: str = "mouse") -> int:
    """Answers the trial on screen the way a participant would; returns the value given."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    kind = trial["kind"]
    if kind in ("likert", "attention"):
        position = 0 if trial["index"] == "practice" else int(trial["index"])
        value = instructed_answer(trial["question"]) if kind == "attention" else 2 + position % 5
        if how == "keyboard":
            _keys(driver, str(value))
        else:
            _css(driver, f"#answer .likert button[data-value='{value}']").click()
        return value
    if kind == "choice":
        value = 0 if trial["index"] == "practice" or int(trial["index"]) % 2 else 1
        if how == "keyboard":
            _keys(driver, Keys.ARROW_LEFT if value == 0 else Keys.ARROW_RIGHT)
        else:
            _all(driver, "#images .pick")[value].click()
        return value
    assert kind == "slider", kind
    slider, go = _css(driver, "#answer input[type=range]"), _css(driver, "#answer button.next")
    # An untouched slider is no answer: submitting stays off until the value is moved.
    assert not go.is_enabled()
    assert "untouched" in slider.get_attribute("class")
    if how == "keyboard":
        _keys(driver, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    else:
        ActionChains(driver).click_and_hold(slider).move_by_offset(slider.size["width"] // 5, 0).release().perform()
    _wait(driver, lambda d: go.is_enabled())
    value = int(slider.get_property("value"))
    assert value != 50
    if how == "keyboard":
        _keys(driver, Keys.ENTER)
    else:
        go.click()
    return value


def wait_after(driver, index: str) -> None:
    """Waits for the trial after `index`, or the completion page once the last answer is stored."""

    def moved_on(d):
        if _all(d, "#completion-code"):
            return True
        section = _css(d, "#trial")
        return section.get_attribute("data-index") != index and section.get_attribute("data-ready") == "true"

    _wait(driver, moved_on)


def left_image_sha(driver) -> str:
    """The pixels' sha256 of the left-hand image (its URL names only an opaque id; its bytes are encoded anew)."""
    src = _all(driver, "#images img")[0].get_attribute("src")
    assert re.search(r"/media/\d+/[0-9a-f]{24}\.png$", src), src
    with urllib.request.urlopen(src) as r:
        return pixels_sha256(r.read())


class Recorder:
    """WSGI middleware keeping every response the server sends (path, headers, body) while a test watches:
    everything a participant's browser receives comes from this server."""

    def __init__(self, app):
        self.app, self.seen = app, []

    def __call__(self, environ, start_response):
        sent = {}

        def start(status, headers, exc_info=None):
            sent["headers"] = headers
            return start_response(status, headers, exc_info)

        result = self.app(environ, start)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        self.seen.append((environ["PATH_INFO"], sent["headers"], body))
        return [body]


@pytest.fixture
def watched(live):
    recorder = Recorder(live.app.wsgi_app)
    live.app.wsgi_app = recorder
    yield recorder
    live.app.wsgi_app = recorder.app


def condition_words(live, slug: str) -> set[str]:
    """What would give an image's condition away: its culture, set, method, manifest id and sha256."""
    manifest = json.loads((live.root / slug / "stimuli" / "manifest.json").read_text())
    words = set(manifest["cultures"]) | {manifest["name"]} | {s["method"] for s in manifest["stimuli"]}
    return words | {s["id"] for s in manifest["stimuli"]} | {s["sha256"] for s in manifest["stimuli"]}


def in_view(driver, element) -> bool:
    return driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight;", element)


def html_lang(driver) -> str:
    return _css(driver, "html").get_attribute("lang")


def finish(driver, ways: dict[str, str], shoot=None, prefix: str = "") -> dict[int, dict]:
    """Begins (instructions, practice) and answers every trial; returns what was answered per index."""
    _visible(driver, "#instructions")
    if shoot:
        shoot(driver, f"{prefix}04-instructions")
    shown_before = driver.execute_script("return performance.now()")
    _css(driver, "#begin").click()
    given: dict[int, dict] = {}
    previous = None
    shot: set[str] = set()
    while True:
        trial = current_trial(driver, after=previous) if not _all(driver, "#completion-code") else None
        if trial is None:
            break
        stage = "practice" if trial["index"] == "practice" else trial["kind"]
        if shoot and stage not in shot:
            shot.add(stage)
            shoot(driver, f"{prefix}05-{stage}")
        left = left_image_sha(driver) if trial["kind"] == "choice" and trial["index"] != "practice" else None
        total = _css(driver, "#progress").get_attribute("aria-valuemax")
        if trial["index"] != "practice":
            # Progress is shown, and this trial's images were fetched while the one before was on screen.
            assert _css(driver, "#counter").text == f"Image {int(trial['index']) + 1} of {total}"
            assert _css(driver, "#progress").get_attribute("aria-valuenow") == trial["index"]
            fetched = driver.execute_script(
                "return [...document.querySelectorAll('#images img')].map(img => Math.min(...performance"
                ".getEntriesByName(img.src).map(e => e.startTime)))")
            assert all(t < shown_before for t in fetched), (trial, fetched, shown_before)
        shown_before = driver.execute_script("return performance.now()")
        value = answer(driver, trial, ways.get(trial["kind"], "mouse"))
        if trial["index"] != "practice":
            given[int(trial["index"])] = {**trial, "value": value, "left": left, "total": int(total)}
        previous = trial["index"]
        wait_after(driver, previous)
    return given


# --- the tests ----------------------------------------------------------------------------------------

def test_english_journey_on_a_desktop_stores_every_answer(live, browser, shoot, tmp_path):
    slug = live.load(slug="desktop-en")
    driver = browser()
    choose_language(driver, live, slug, "en")
    agree(driver, shoot, "desktop-02-consent")
    fill_background(driver, shoot=shoot, name="desktop-03-background")
    given = finish(driver, {"likert": "mouse", "attention": "keyboard", "choice": "keyboard", "slider": "mouse"},
                   shoot, "desktop-")
    code = _visible(driver, "#completion-code").text
    shoot(driver, "desktop-06-done")
    assert code == "C1234ABC"
    assert _css(driver, "#redirect").get_attribute("href") == \
        "https://app.prolific.com/submissions/complete?cc=C1234ABC"

    data = _export(live, slug, tmp_path / "export")
    (person,) = data["participants"]
    assert person["status"] == "completed" and person["source"] == "link" and person["language"] == "en"
    assert (person["culture_group"], person["country_of_birth"], person["country_of_residence"]) == \
        ("east_asian", "JP", "GB")
    assert (person["age"], person["gender"], person["art_training"]) == ("34", "genderqueer", "2")
    assert (person["attention_passed"], person["attention_total"]) == ("2", "2")
    responses = {int(r["trial_index"]): r for r in data["responses"]}
    total = next(iter(given.values()))["total"]
    assert sorted(responses) == sorted(given) == list(range(total)) and total == 14
    assert {g["kind"] for g in given.values()} == {"likert", "slider", "choice", "attention"}
    folder = live.root / slug / "stimuli"
    manifest = json.loads((folder / "manifest.json").read_text())
    sha = {s["id"]: pixels_sha256((folder / s["file"]).read_bytes()) for s in manifest["stimuli"]}
    for index, shown in given.items():
        stored = responses[index]
        assert stored["trial_kind"] == shown["kind"], index
        assert int(stored["value"]) == shown["value"], index
        assert 0 < int(stored["rt_ms"]) < 60_000, index
        if shown["kind"] == "attention":
            assert stored["correct"] == "true"
        if shown["kind"] == "choice":
            # value 0 means the left-hand image, which is the one stored as stimulus_id.
            assert sha[stored["stimulus_id"]] == shown["left"] and stored["stimulus_id_b"]


def test_chinese_journey_on_a_phone(live, browser, shoot, tmp_path, watched):
    """The whole journey in zh on a phone: every page in Chinese with <html lang="zh"> and a title of its own,
    errors next to their question, in view and focused, and nothing the browser receives names a condition."""
    slug = live.load(slug="phone-zh")
    driver = browser(phone=True, language="zh-CN,zh")
    driver.get(f"{live.url}/s/{slug}")
    _visible(driver, "[data-language=zh]")
    assert "图案偏好" in _css(driver, "h1").text
    titles = [driver.title]
    assert html_lang(driver) == "zh" and "选择语言" in driver.title  # the browser asked for Chinese
    shoot(driver, "phone-01-language")
    _no_sideways_scroll(driver)
    _css(driver, "[data-language=zh]").click()

    # Consent; declining asks once more, and going back keeps the participation open.
    _visible(driver, "#consent-yes")
    assert "您同意参加。" in _css(driver, "#consent-text").text
    assert html_lang(driver) == "zh"
    titles.append(driver.title)
    _no_sideways_scroll(driver)
    _css(driver, "#consent-no").click()
    question = _visible(driver, "#decline-question")
    assert "确定不参加" in question.text and in_view(driver, question)
    assert driver.switch_to.active_element == question
    shoot(driver, "phone-02-consent-declining")
    _css(driver, "#decline-back").click()
    agree(driver, shoot, "phone-02-consent")

    # The questionnaire: an empty submit puts the error under its question, in view, focused, announced.
    _visible(driver, "#background")
    assert html_lang(driver) == "zh"
    titles.append(driver.title)
    assert "东亚" in _css(driver, "#background fieldset").text
    _no_sideways_scroll(driver)
    driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    _css(driver, "#background button[type=submit]").click()
    error = _visible(driver, "#error-culture_group")
    assert "请选择您最认同的文化背景" in error.text
    assert error.get_attribute("role") == "alert" and in_view(driver, error)
    group = _css(driver, "fieldset[data-field=culture_group]")
    assert group.get_attribute("aria-describedby") == "error-culture_group"
    assert error.find_element("xpath", "..") == group  # inside the question it is about
    focused = driver.switch_to.active_element
    assert focused.get_attribute("name") == "culture_group" and focused.get_attribute("aria-invalid") == "true"
    assert _css(driver, "#error").get_attribute("hidden")  # not ~800 px below, at the button
    shoot(driver, "phone-03-background-error")
    # An answer only the server refuses: its message comes back in Chinese, under its own question.
    _css(driver, "input[name=culture_group][value=east_asian]").click()
    assert not _css(driver, "#error-culture_group").is_displayed()
    driver.execute_script(
        "const s = document.querySelector('select[name=country_of_birth]');"
        "s.add(new Option('?', 'XX')); s.value = 'XX';")
    _css(driver, "#background button[type=submit]").click()
    error = _visible(driver, "#error-country_of_birth")
    assert "请从列表中选择一个国家" in error.text and in_view(driver, error)
    assert driver.switch_to.active_element.get_attribute("name") == "country_of_birth"
    driver.execute_script("document.querySelector('select[name=country_of_birth] option[value=XX]').remove()")
    fill_background(driver, shoot=shoot, name="phone-03-background")

    _visible(driver, "#instructions")
    assert html_lang(driver) == "zh"
    titles.append(driver.title)
    _no_sideways_scroll(driver)
    shoot(driver, "phone-04-instructions")
    _css(driver, "#begin").click()
    texts, previous, seen = set(), None, set()
    while not _all(driver, "#completion-code"):
        trial = current_trial(driver, after=previous)
        texts.add(trial["question"])
        _no_sideways_scroll(driver)
        boxes = driver.execute_script("return [...document.querySelectorAll('#answer button, #images .pick')]"
                                      ".map(b => b.getBoundingClientRect())")
        # Touch targets: at least 44 CSS px high (WCAG 2.5.5), all on screen without scrolling.
        for box in boxes:
            assert box["height"] >= 44 and box["bottom"] <= 844, (trial, box)
        if trial["kind"] in ("likert", "attention"):
            assert len({box["top"] for box in boxes}) == 1, (trial, boxes)  # the whole scale on one row
        stage = "practice" if trial["index"] == "practice" else trial["kind"]
        if stage not in seen:
            seen.add(stage)
            shoot(driver, f"phone-05-{stage}")
        answer(driver, trial, "mouse")
        previous = trial["index"]
        wait_after(driver, previous)
    assert {"你有多喜欢这张图片?", "它有多美?", "你更喜欢哪一张?"} <= texts
    _no_sideways_scroll(driver)
    shoot(driver, "phone-06-done")
    assert _css(driver, "#completion-code").text == "C1234ABC"
    assert html_lang(driver) == "zh"
    titles.append(driver.title)
    assert len(set(titles)) == len(titles) and all("图案偏好" in t for t in titles), titles
    (person,) = _export(live, slug, tmp_path / "export")["participants"]
    assert person["language"] == "zh" and person["status"] == "completed" and person["languages"] == "ja;en"

    # Everything the browser received: pages, script, style, API replies, images (bytes and headers).
    words = condition_words(live, slug)
    paths = [path for path, _, _ in watched.seen]
    assert any(p.startswith("/api/v1/participants/") for p in paths) and any(p.startswith("/media/") for p in paths)
    for path, headers, body in watched.seen:
        received = (path + json.dumps(headers) + body.decode("latin-1")).lower()
        found = [word for word in words if word.lower() in received]
        assert not found, (path, found)


def test_declining_consent_ends_politely(live, browser, shoot, tmp_path):
    slug = live.load(slug="decline")
    driver = browser()
    choose_language(driver, live, slug, "en", "?workerId=A1B2C3D4E5&assignmentId=3XYZ&hitId=3HIT")
    _visible(driver, "#consent-no").click()
    # Asked once more; nothing is recorded until the second answer.
    assert "really not want to take part" in _visible(driver, "#decline-confirm").text
    assert not _css(driver, "#consent-yes").is_displayed()
    (person,) = _export(live, slug, tmp_path / "before")["participants"]
    assert person["status"] == "started"
    _css(driver, "#decline-final").click()
    ended = _visible(driver, "#ended")
    shoot(driver, "desktop-07-declined")
    assert ended.get_attribute("data-reason") == "declined_consent"
    assert "chose not to take part" in ended.text
    # Reopening the link shows the same end, not a new participation.
    driver.get(f"{live.url}/s/{slug}?workerId=A1B2C3D4E5&assignmentId=3XYZ&hitId=3HIT")
    assert _visible(driver, "#ended").get_attribute("data-reason") == "declined_consent"
    (person,) = _export(live, slug, tmp_path / "export")["participants"]
    assert person["status"] == "screened_out" and person["culture_group"] == "" and person["source"] == "mturk"


def short_design(trials: int) -> dict:
    """A design of ``trials`` trials and nothing else (no attention checks, no practice): for tests about
    something other than the trials themselves."""
    return {"trials_per_participant": trials, "order": "latin_square", "balance": ["stimulus_culture"],
            "attention_checks": 0, "practice": False}


def _start_trials(driver, live, slug: str, query: str = "") -> None:
    choose_language(driver, live, slug, "en", query)
    agree(driver)
    fill_background(driver)
    _visible(driver, "#begin").click()


def _answer_n(driver, n: int, how: str = "keyboard") -> str | None:
    previous = None
    for _ in range(n):
        trial = current_trial(driver, after=previous)
        answer(driver, trial, how)
        previous = trial["index"]
    return previous


def test_time_away_is_recorded_and_the_answer_given_stays_marked(live, browser, tmp_path):
    slug = live.load(slug="away", design=short_design(3))
    driver = browser()
    _start_trials(driver, live, slug)
    trial = current_trial(driver)
    # Small images are shown at most 8 times their own size, with crisp pixels (the set's are 64 px).
    sizes = driver.execute_script(
        "return [...document.querySelectorAll('#images img')].map(i => [i.naturalWidth,"
        " i.getBoundingClientRect().width, getComputedStyle(i).imageRendering])")
    assert all(shown <= 8 * native and rendering == "pixelated" for native, shown, rendering in sizes), sizes
    # The participant switches to another tab for a while (the page is hidden), then answers.
    driver.execute_script("Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});"
                          "document.dispatchEvent(new Event('visibilitychange'));")
    driver.execute_script("return new Promise(r => setTimeout(r, 1200))")
    driver.execute_script("delete document.hidden; document.dispatchEvent(new Event('visibilitychange'));")
    answer(driver, trial, "mouse")
    # A slow reply: the answer given stays marked (and the trial on screen) until the next trial is shown.
    trial = current_trial(driver, after="0")
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions",
                           {"offline": False, "latency": 1500, "downloadThroughput": -1, "uploadThroughput": -1})
    answer(driver, trial, "mouse")
    chosen = _all(driver, "#trial .chosen")
    assert len(chosen) == 1 and chosen[0].is_displayed() and chosen[0].get_attribute("aria-pressed") == "true"
    assert _css(driver, "#trial").get_attribute("data-index") == "1"
    assert driver.execute_script("return getComputedStyle(arguments[0]).opacity", chosen[0]) == "1"
    driver.execute_cdp_cmd("Network.emulateNetworkConditions",
                           {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    wait_after(driver, "1")
    answer(driver, current_trial(driver, after="1"), "mouse")
    _visible(driver, "#completion-code")
    responses = {int(r["trial_index"]): r for r in _export(live, slug, tmp_path / "export")["responses"]}
    away, present = int(responses[0]["hidden_ms"]), int(responses[1]["hidden_ms"])
    assert 1100 <= away <= int(responses[0]["rt_ms"]), responses[0]
    assert present < 200, responses[1]


def test_reload_and_reopening_the_link_resume_at_the_first_unanswered_trial(live, browser, tmp_path):
    slug = live.load(slug="resume", design=short_design(6))
    driver = browser()
    _start_trials(driver, live, slug)
    _answer_n(driver, 3)
    _wait(driver, lambda d: _css(d, "#trial").get_attribute("data-index") == "3")
    driver.refresh()
    assert current_trial(driver)["index"] == "3"
    assert not _css(driver, "#instructions").is_displayed()  # no instructions again
    assert _css(driver, "#counter").text == "Image 4 of 6"
    # Closing the tab and opening the plain study link again: the link asks, and the participant says it
    # was them.
    driver.get("about:blank")
    driver.get(f"{live.url}/s/{slug}")
    _visible(driver, "#resume")
    assert not _css(driver, "#choose").is_displayed()
    _css(driver, "#resume-continue").click()
    assert current_trial(driver)["index"] == "3"
    _answer_n(driver, 3)
    _visible(driver, "#completion-code")
    responses = _export(live, slug, tmp_path / "export")["responses"]
    assert sorted(int(r["trial_index"]) for r in responses) == list(range(6))


def test_on_a_shared_computer_the_next_person_starts_a_participation_of_their_own(live, browser, tmp_path):
    slug = live.load(slug="lab", design=short_design(2))
    driver = browser()
    # The first person finishes. The second, at the same plain link, is not asked anything and never sees the
    # first one's completion page.
    _start_trials(driver, live, slug)
    _answer_n(driver, 2)
    _visible(driver, "#completion-code")
    driver.get(f"{live.url}/s/{slug}")
    _visible(driver, "[data-language=en]")
    assert not _css(driver, "#resume").is_displayed() and driver.current_url.endswith(f"/s/{slug}")
    # The second person answers one trial; the answer to the other does not reach the server before they go.
    _start_trials(driver, live, slug)
    trial = current_trial(driver)
    answer(driver, trial, "keyboard")
    trial = current_trial(driver, after=trial["index"])
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/responses"]})
    answer(driver, trial, "keyboard")
    _wait(driver, lambda d: "Retrying" in _css(d, "#status").text)
    # A third person opens the link: asked, they say they are new, and choose a language on the same page.
    driver.get(f"{live.url}/s/{slug}")
    _visible(driver, "#resume")
    assert not _css(driver, "#choose").is_displayed()
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
    _css(driver, "#resume-new").click()
    _visible(driver, "[data-language=en]").click()
    agree(driver)
    fill_background(driver)
    _visible(driver, "#begin").click()
    _answer_n(driver, 2)
    _visible(driver, "#completion-code")
    data = _export(live, slug, tmp_path / "export")
    answered = sorted(sum(r["participant_id"] == p["participant_id"] for r in data["responses"])
                      for p in data["participants"])
    assert answered == [2, 2, 2]  # the second person's last answer too, sent before their link was forgotten
    assert driver.execute_script("return Object.keys(localStorage).filter(k => k.includes('pending')).length") == 0


def test_a_closed_study_turns_newcomers_away_and_lets_a_participant_who_started_go_on(live, browser):
    from sqlalchemy import select

    from culturelab.platform.models import Study
    from culturelab.platform.recruitment import set_recruiting

    slug = live.load(slug="closing", design=short_design(2))
    started, newcomer = browser(), browser()
    _start_trials(started, live, slug)
    _answer_n(started, 1)
    with session_scope(live.app) as session:
        set_recruiting(session, session.scalar(select(Study.id).where(Study.slug == slug)), False, "test")
    newcomer.get(f"{live.url}/s/{slug}")
    assert "not taking new participants" in _visible(newcomer, "#closed").text
    assert not _css(newcomer, "#choose").is_displayed()
    started.get(f"{live.url}/s/{slug}")
    _visible(started, "#resume-continue").click()
    _answer_n(started, 1)
    _visible(started, "#completion-code")


def test_answers_given_offline_are_retried_and_sent_again_after_a_reload(live, browser, tmp_path):
    slug = live.load(slug="offline", design=short_design(4))
    driver = browser()
    _start_trials(driver, live, slug)

    def network(offline: bool) -> None:
        driver.execute_cdp_cmd("Network.emulateNetworkConditions",
                               {"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})

    driver.execute_cdp_cmd("Network.enable", {})
    # The connection drops while the first answer is sent: the page retries until it is stored.
    trial = current_trial(driver)
    network(offline=True)
    first = answer(driver, trial, "keyboard")
    _wait(driver, lambda d: "Retrying" in _css(d, "#status").text)
    network(offline=False)
    trial = current_trial(driver, after="0")
    # The connection drops again, and this time the participant reloads before it is back.
    network(offline=True)
    value = answer(driver, trial, "keyboard")
    _wait(driver, lambda d: "Retrying" in _css(d, "#status").text)
    pending = driver.execute_script("return Object.keys(localStorage).filter(k => k.includes('pending'))"
                                    ".map(k => localStorage.getItem(k))")
    assert len(pending) == 1 and f'"value":{value}' in pending[0]
    before = _export(live, slug, tmp_path / "before")["responses"]
    assert [int(r["value"]) for r in before] == [first]  # the first once; the second not yet
    network(offline=False)
    driver.refresh()
    assert current_trial(driver)["index"] == "2"
    responses = {int(r["trial_index"]): r for r in _export(live, slug, tmp_path / "after")["responses"]}
    assert sorted(responses) == [0, 1] and [int(responses[i]["value"]) for i in (0, 1)] == [first, value]
    assert responses[1]["response_id"] in pending[0]  # the very answer given offline, stored once
    assert driver.execute_script("return Object.keys(localStorage).filter(k => k.includes('pending')).length") == 0


def test_an_image_that_fails_to_load_is_retried_and_its_trial_waits_for_it(live, browser, tmp_path):
    slug = live.load(slug="blocked", design=short_design(2))
    driver = browser()
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/media/*"]})
    _start_trials(driver, live, slug)
    # No image arrives: the page says it is retrying and offers nothing to answer.
    _wait(driver, lambda d: "Retrying" in _css(d, "#status").text)
    assert _css(driver, "#trial").get_attribute("data-ready") == "false"
    assert not driver.find_elements("css selector", "#images img")
    assert all(b.get_attribute("disabled") for b in driver.find_elements("css selector", "#answer button"))
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
    trial = current_trial(driver)
    widths = driver.execute_script("return [...document.querySelectorAll('#images img')].map(i => i.naturalWidth)")
    assert widths and all(w > 0 for w in widths)  # the real images, not a broken-image icon
    assert "Retrying" not in _css(driver, "#status").text
    value = answer(driver, trial, "keyboard")
    current_trial(driver, after="0")
    assert [int(r["value"]) for r in _export(live, slug, tmp_path / "export")["responses"]] == [value]


def test_prolific_participant_resumes_on_another_device_and_is_sent_back_with_the_code(live, browser, tmp_path):
    slug = live.load(slug="prolific", design=short_design(4),
                     recruitment={"completion_url": f"{live.url}/?cc={{code}}", "completion_code": "PROLIFIC1"})
    query = "?PROLIFIC_PID=5f1e2d3c4b5a69788796a5b4&STUDY_ID=st123&SESSION_ID=se456"
    first = browser()
    _start_trials(first, live, slug, query)
    _answer_n(first, 2, "mouse")
    _wait(first, lambda d: _css(d, "#trial").get_attribute("data-index") == "2")
    first.quit()
    # The same Prolific id on a fresh browser continues the same participation.
    second = browser()
    choose_language(second, live, slug, "en", query)
    assert current_trial(second)["index"] == "2"
    _answer_n(second, 2, "mouse")
    link = _visible(second, "#redirect")
    assert link.get_attribute("href") == f"{live.url}/?cc=PROLIFIC1"
    assert _css(second, "#completion-code").text == "PROLIFIC1"
    # No countdown and no forced redirect: the button has the focus, so Enter (or a click) goes back at once.
    assert not _all(second, "#countdown")
    assert second.switch_to.active_element == link
    _keys(second, "\ue007")  # Enter
    _wait(second, lambda d: d.current_url == f"{live.url}/?cc=PROLIFIC1")
    (person,) = _export(live, slug, tmp_path / "export")["participants"]
    assert person["source"] == "prolific" and person["status"] == "completed"
    assert "5f1e2d3c" not in person["participant_id"]  # a pseudonym, never the recruitment id


def test_mturk_worker_submits_the_hit_from_the_completion_page(live, browser, tmp_path):
    slug = live.load(slug="mturk", design={"trials_per_participant": 2, "order": "random",
                                           "attention_checks": 0, "practice": False})
    query = "?workerId=A1B2C3D4E5&assignmentId=3ASSIGN&hitId=3HIT&turkSubmitTo=https%3A%2F%2Fworkersandbox.mturk.com"
    driver = browser()
    _start_trials(driver, live, slug, query)
    _answer_n(driver, 2, "mouse")
    form = _visible(driver, "#mturk-submit")
    assert form.get_attribute("action") == "https://workersandbox.mturk.com/mturk/externalSubmit"
    assert not _all(driver, "#redirect")
    # The worker submits when ready (no countdown); record the submission instead of leaving.
    driver.execute_script("document.getElementById('mturk-submit').addEventListener('submit', (e) => {"
                          " e.preventDefault(); window.submitted = [e.target.action, ...new FormData(e.target)]; });")
    assert not _all(driver, "#countdown")
    _css(driver, "#continue").click()
    submitted = _wait(driver, lambda d: d.execute_script("return window.submitted"))
    assert submitted[0] == "https://workersandbox.mturk.com/mturk/externalSubmit"
    assert ["assignmentId", "3ASSIGN"] in submitted and ["completion_code", "C1234ABC"] in submitted
    (person,) = _export(live, slug, tmp_path / "export")["participants"]
    assert person["source"] == "mturk" and person["status"] == "completed"


def test_a_full_group_sees_the_study_is_full(live, browser, shoot, tmp_path):
    slug = live.load(slug="full", languages=["en"], recruitment={"quotas": {"east_asian": 0, "west_african": 5}})
    driver = browser()
    driver.get(f"{live.url}/s/{slug}")  # one language: no choice to make, straight to consent
    agree(driver)
    # The questionnaire says what is missing or wrong, in the page, before anything is sent.
    submit = _visible(driver, "#background button[type=submit]")
    submit.click()
    error = _visible(driver, "#error-culture_group")
    assert "cultural background" in error.text and in_view(driver, error)
    _css(driver, "input[name=culture_group][value=east_asian]").click()
    _css(driver, "input[name=age]").send_keys("15")
    submit.click()
    error = _visible(driver, "#error-age")
    assert "18 to 120" in error.text and in_view(driver, error)
    assert driver.switch_to.active_element == _css(driver, "input[name=age]")
    assert not _css(driver, "#error-culture_group").is_displayed()  # that one was corrected
    _css(driver, "input[name=age]").clear()
    fill_background(driver, group="east_asian")
    ended = _visible(driver, "#ended")
    shoot(driver, "desktop-08-quota-full")
    assert ended.get_attribute("data-reason") == "quota_full"
    assert "This study is full" in ended.text
    (person,) = _export(live, slug, tmp_path / "export")["participants"]
    assert person["status"] == "screened_out"


def test_researcher_signs_in_sees_recruitment_and_downloads_the_data_package(live, browser, shoot):
    slug = live.load(slug="researcher-view")
    Bot(live.app.test_client(), slug).complete("west_african")
    with session_scope(live.app) as session:
        create_researcher(session, "grace@example.org", "a long enough password")
        add_member(session, slug, "grace@example.org", "owner")  # a researcher sees only their own studies
    driver = browser()
    driver.get(f"{live.url}/researcher/")
    _visible(driver, "input[name=email]").send_keys("grace@example.org")
    _css(driver, "input[name=password]").send_keys("a long enough password")
    shoot(driver, "desktop-09-researcher-login")
    _css(driver, "button[type=submit]").click()
    section = _visible(driver, f"#study-{slug}")
    shoot(driver, "desktop-10-researcher-dashboard")
    _no_sideways_scroll(driver)
    assert section.find_element("css selector", "[data-status=completed]").text == "1"
    assert section.find_element("css selector", "tr[data-group=west_african]").text.split()[-1] == "1"
    href = section.find_element("css selector", "a[href*='format=csv']").get_attribute("href")
    # The download, with the browser's login session.
    got = driver.execute_async_script(
        "const done = arguments[1]; fetch(arguments[0]).then(async r => done([r.status, "
        "r.headers.get('content-type'), [...new Uint8Array(await r.arrayBuffer()).slice(0, 2)]]))", href)
    assert got == [200, "application/zip", [0x50, 0x4B]]  # "PK": a zip archive
