"""The participant pages through Flask's test client (the browser tests in tests/e2e drive the scripts)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from pydantic import ValidationError
from pypinyin import lazy_pinyin

from culturelab.platform.validation import Background

from bot import Bot


def page(client, url, headers=None) -> str:
    r = client.get(url, headers=headers)
    assert r.status_code == 200, r.status_code
    return r.get_data(as_text=True)


def test_study_link_offers_the_study_languages_and_keeps_recruitment_ids(client, load):
    slug = load()
    html = page(client, f"/s/{slug}?PROLIFIC_PID=abc123&STUDY_ID=s1&SESSION_ID=x9")
    assert 'data-language="en"' in html and 'data-language="zh"' in html
    assert "Pattern preferences" in html and "图案偏好" in html
    assert (
        '"external_id": "abc123"' in html and '"source": "prolific"' in html and '"SESSION_ID": "x9"' in html
    )
    html = page(client, f"/s/{slug}?workerId=W1&assignmentId=A1&hitId=H1")
    assert '"external_id": "W1"' in html and '"source": "mturk"' in html and '"assignmentId": "A1"' in html


def test_unknown_study_and_token_pages_are_404(client, load):
    load()
    assert client.get("/s/no-such-study").status_code == 404
    assert client.get("/p/no-such-token").status_code == 404


def test_each_stage_renders_in_the_participants_language(client, load):
    slug = load()
    bot = Bot(client, slug, language="zh")
    html = page(client, f"/p/{bot.token}")
    assert "您同意参加。" in html and 'lang="zh"' in html and "consent-yes" in html
    bot.consent()
    html = page(client, f"/p/{bot.token}")
    assert 'name="culture_group" value="east_asian"' in html and "东亚" in html
    assert '<option value="JP">日本</option>' in html  # country names in the participant's language
    bot.background()
    html = page(client, f"/p/{bot.token}")
    assert 'id="trial"' in html and 'id="instructions"' in html
    nxt = bot.next()
    while not nxt["done"]:
        nxt = bot.answer(nxt["trial"]).get_json()["next"]
    html = page(client, f"/p/{bot.token}")
    assert "C1234ABC" in html
    assert "https://app.prolific.com/submissions/complete?cc=C1234ABC" in html


def test_english_pages_and_polite_end_after_declining(client, load):
    bot = Bot(client, load(), language="en")
    assert "You agree to take part." in page(client, f"/p/{bot.token}")
    bot.consent(False)
    html = page(client, f"/p/{bot.token}")
    assert re.search(r"chose not to take part", html)


def test_media_is_served_by_opaque_id_with_long_caching(client, load):
    bot = Bot(client, load())
    bot.consent(), bot.background()
    stimulus = bot.next()["trial"]["stimuli"][0]
    r = client.get(stimulus["url"])
    assert r.status_code == 200 and r.mimetype == "image/png" and r.data.startswith(b"\x89PNG")
    assert "max-age=31536000" in r.headers["Cache-Control"]
    assert stimulus["id"] in r.headers["Content-Disposition"]  # a download is named by the opaque id too
    study, opaque = re.fullmatch(r"/media/(\d+)/([0-9a-f]{24})\.png", stimulus["url"]).groups()
    assert opaque == stimulus["id"]
    assert client.get(f"/media/{study}/{'0' * 24}.png").status_code == 404
    assert client.get(f"/media/{int(study) + 1}/{opaque}.png").status_code == 404  # ids belong to one study
    assert client.get("/media/" + hashlib.sha256(r.data).hexdigest() + ".png").status_code == 404  # not by hash
    assert client.get("/media/../../etc/passwd.png").status_code == 404
    assert client.get(f"/media/{10**25}/{opaque}.png").status_code == 404  # beyond any row id: no 500
    # No header orders the images: the validator is the opaque id, not the file's modification time.
    assert r.headers["ETag"] == f'"{opaque}"' and "Last-Modified" not in r.headers
    assert client.get(stimulus["url"], headers={"If-None-Match": f'"{opaque}"'}).status_code == 304


def test_trials_name_no_culture_set_method_or_hash(app, client, load, tmp_path):
    """What the participant API sends names stimuli only by opaque ids: the same id for the same image
    throughout a study, another in another study, and nothing from the manifest."""
    slug = load()
    manifest = json.loads((tmp_path / "stimuli" / "manifest.json").read_text())
    secrets = {s["id"] for s in manifest["stimuli"]} | {s["sha256"] for s in manifest["stimuli"]}
    secrets |= set(manifest["cultures"]) | {manifest["name"], "cgan"}
    seen: dict[str, str] = {}  # opaque id -> sha256 of its bytes
    for _ in range(2):
        bot = Bot(client, slug)
        bot.consent(), bot.background()
        nxt = bot.next()
        while not nxt["done"]:
            text = json.dumps(nxt)
            assert not [word for word in secrets if word in text], text
            for stimulus in nxt["trial"]["stimuli"]:
                digest = hashlib.sha256(client.get(stimulus["url"]).data).hexdigest()
                assert seen.setdefault(stimulus["id"], digest) == digest
            nxt = bot.answer(nxt["trial"]).get_json()["next"]
    assert len(set(seen.values())) == len(seen)  # one id per image
    other = Bot(client, load(slug="motif-other"))
    other.consent(), other.background()
    assert not {s["id"] for s in other.next()["trial"]["stimuli"]} & set(seen)


def test_every_page_has_the_language_of_its_words_and_a_title_of_its_own(client, load):
    slug = load()
    chinese = {"Accept-Language": "zh-CN,zh;q=0.9"}
    assert '<html lang="zh">' in page(client, f"/s/{slug}", headers=chinese)
    assert '<html lang="en">' in page(client, f"/s/{slug}")
    assert '<html lang="zh">' in page(client, "/researcher/login", headers=chinese)
    assert '<html lang="zh">' in page(client, "/", headers=chinese)
    bot = Bot(client, slug, language="zh")
    titles = [re.search(r"<title>(.*?)</title>", page(client, f"/s/{slug}", headers=chinese)).group(1)]
    def answer_all():
        nxt = bot.next()
        while not nxt["done"]:
            nxt = bot.answer(nxt["trial"]).get_json()["next"]

    for step in (bot.consent, bot.background, answer_all, None):
        html = page(client, f"/p/{bot.token}")
        assert '<html lang="zh">' in html
        titles.append(re.search(r"<title>(.*?)</title>", html).group(1))
        if step is not None:
            step()
    assert len(set(titles)) == len(titles), titles  # language, consent, background, trials, done
    assert all(t.endswith("图案偏好") for t in titles), titles


def test_errors_are_styled_pages_in_the_readers_language_and_json_under_the_api(client, load):
    load()
    r = client.get("/no/such/page", headers={"Accept-Language": "zh"})
    html = r.get_data(as_text=True)
    assert r.status_code == 404 and r.mimetype == "text/html"
    assert '<html lang="zh">' in html and "找不到页面" in html and "style.css" in html
    assert 'data-status="404"' in html and "Werkzeug" not in html
    r = client.get("/p/not-a-token")
    assert r.status_code == 404 and "Page not found" in r.get_data(as_text=True)
    r = client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"


def test_an_unexpected_failure_is_a_styled_500_page(app, client, load, monkeypatch):
    bot = Bot(client, load(), language="zh")

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr("culturelab.platform.journey.stage", broken)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: the error page, not the test's exception
    r = client.get(f"/p/{bot.token}")
    html = r.get_data(as_text=True)
    assert r.status_code == 500 and "出错了" in html and '<html lang="zh">' in html
    assert "the database went away" not in html and "Traceback" not in html


def test_the_language_picker_offers_common_languages_first_and_sorts_chinese_by_pinyin(client, load):
    bot = Bot(client, load(), language="zh")
    bot.consent()
    html = page(client, f"/p/{bot.token}")
    common, rest = html.split('id="all-languages"')
    common = common.split('id="common-languages"')[1]
    codes = lambda part: re.findall(r'name="languages" value="([a-z]{2,3})"', part)  # noqa: E731
    names = lambda part: re.findall(r'name="languages" value="[a-z]{2,3}"> <span>(.*?)</span>', part)  # noqa: E731
    assert set(codes(common)) >= {"en", "zh", "es", "hi", "ar", "ja"}
    assert not set(codes(common)) & set(codes(rest))  # each language once
    for part in (common, rest):
        keys = [" ".join(lazy_pinyin(name)) for name in names(part)]
        assert keys == sorted(keys)
    assert names(common)[0] == "阿拉伯语"  # a-la-bo-yu: first by pinyin, though not by code point


def test_every_language_the_form_offers_is_accepted_by_the_api(client, load):
    """The picker lists every language CLDR names, among them many with no locale data of their own (Min Nan,
    Hakka, Wu): ticking any of them must be an answer the API stores, never "choose from the list"."""
    slug = load()
    for language in ("en", "zh"):
        bot = Bot(client, slug, language=language)
        bot.consent()
        offered = re.findall(r'name="languages" value="([a-z]{2,3})"', page(client, f"/p/{bot.token}"))
        assert {"nan", "hak", "wuu", "yue", "bo", "ug"} <= set(offered) and not {"mul", "zxx", "und"} & set(offered)
        refused = []
        for code in offered:  # the model the background endpoint validates with
            try:
                Background.model_validate({"culture_group": "east_asian", "languages": [code]})
            except ValidationError:
                refused.append(code)
        assert refused == [], refused
    bot = Bot(client, slug)
    bot.consent()
    assert bot.background(languages=["nan", "hak", "zh"]).status_code == 200


def test_mturk_preview_enrols_nobody_and_asks_to_accept_the_hit(client, load):
    slug = load()
    html = page(client, f"/s/{slug}?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H1")
    assert 'id="preview"' in html and "accept the HIT" in html and "start-data" not in html


def test_an_mturk_worker_finishes_by_submitting_the_hit_not_by_a_redirect(client, load):
    slug = load()
    html = page(client, f"/s/{slug}?workerId=W7&assignmentId=A7&hitId=H7&turkSubmitTo=https://workersandbox.mturk.com")
    assert '"turkSubmitTo": "workersandbox.mturk.com"' in html
    # What the start page posts (participant.js sends its start-data as the body).
    bot = Bot(client, slug, language="zh", external_id="W7", source="mturk",
              recruitment={"assignmentId": "A7", "hitId": "H7", "turkSubmitTo": "workersandbox.mturk.com"})
    token = bot.token
    assert page(client, f"/p/{token}").count("mturk-submit") == 0  # nothing to submit before the end
    done = bot.complete()
    assert done["completion_code"] == "C1234ABC" and done["redirect_url"] is None
    html = page(client, f"/p/{token}")
    assert 'action="https://workersandbox.mturk.com/mturk/externalSubmit"' in html
    assert 'name="assignmentId" value="A7"' in html and 'name="completion_code" value="C1234ABC"' in html
    assert "提交 HIT" in html and "app.prolific.com" not in html


def test_a_foreign_turk_submit_host_is_not_kept(client, load):
    slug = load()
    html = page(client, f"/s/{slug}?workerId=W8&assignmentId=A8&turkSubmitTo=https://evil.example")
    assert "turkSubmitTo" not in html


def test_the_example_studys_consent_states_its_trial_count(app, client):
    from culturelab.platform.db import session_scope
    from culturelab.platform.study import read_study
    from culturelab.platform.study_load import load_study

    folder = Path(__file__).parents[2] / "platform" / "examples" / "motif-preferences"
    spec = read_study(folder / "study.yaml")
    with session_scope(app) as session:
        load_study(session, spec, folder, Path(app.config["MEDIA_DIR"]))
    bot = Bot(client, spec.slug)
    bot.consent()
    total = bot.background("european").get_json()["total"]
    for language in spec.languages:
        assert re.findall(r"\d+", spec.consent[language]) == [str(total)], (language, spec.consent[language])
