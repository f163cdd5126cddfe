"""The participant pages through Flask's test client (the browser tests in tests/e2e drive the scripts)."""

from __future__ import annotations

import re

from bot import Bot


def page(client, url) -> str:
    r = client.get(url)
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


def test_media_is_served_by_hash_with_long_caching(client, load):
    bot = Bot(client, load())
    bot.consent(), bot.background()
    url = bot.next()["trial"]["stimuli"][0]["url"]
    r = client.get(url)
    assert r.status_code == 200 and r.mimetype == "image/png" and r.data.startswith(b"\x89PNG")
    assert "max-age=31536000" in r.headers["Cache-Control"]
    assert client.get("/media/" + "0" * 64 + ".png").status_code == 404
    assert client.get("/media/../../etc/passwd.png").status_code == 404


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
