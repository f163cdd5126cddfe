"""UI strings go through Flask-Babel catalogues, and the Chinese catalogue is complete and compiled."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from bot import Bot

PLATFORM = Path(__file__).parents[2] / "platform"
CATALOGUE = PLATFORM / "translations" / "zh" / "LC_MESSAGES"


def ui_strings() -> set[str]:
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    # extract_from_dir yields (filename, lineno, message, comments, context); plurals come as tuples.
    return {m[2] if isinstance(m[2], str) else m[2][0] for m in extract_from_dir(str(PLATFORM), method_map)}


def test_every_ui_string_has_a_chinese_translation():
    with (CATALOGUE / "messages.po").open("rb") as f:
        catalogue = read_po(f)
    untranslated = sorted(s for s in ui_strings() if not (catalogue.get(s) and catalogue.get(s).string))
    assert not untranslated, f"run scripts/translations.sh and translate: {untranslated}"


def test_the_compiled_catalogue_matches_the_source():
    with (CATALOGUE / "messages.po").open("rb") as f:
        source = {m.id: m.string for m in read_po(f) if m.id and m.string}
    with (CATALOGUE / "messages.mo").open("rb") as f:
        compiled = {m.id: m.string for m in read_mo(f) if m.id}
    assert compiled == source, "run scripts/translations.sh to recompile messages.mo"


def test_attention_checks_are_worded_in_the_participants_language(client, load):
    bot = Bot(client, load(), language="zh")
    bot.consent(), bot.background()
    nxt = bot.next()
    while nxt["trial"]["kind"] != "attention":
        nxt = bot.answer(nxt["trial"]).get_json()["next"]
    assert nxt["trial"]["question"]["text"].startswith("为表明您在认真阅读")
    html = client.get(f"/p/{bot.token}").get_data(as_text=True)
    assert "说明" in html  # the instructions heading, from the catalogue
