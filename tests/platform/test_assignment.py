"""Trial assignment: balance, Latin-square rotation, seeded randomisation, counterbalanced choices."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from culturelab.platform.assignment import plan_trials, williams_rows
from culturelab.platform.db import session_scope
from culturelab.platform.models import Participant, Stimulus, Trial
from culturelab.platform.study import StudyError, parse_study
from culturelab.platform.study_load import set_problems

from bot import Bot
from studykit import study_document

POOL = {c: list(range(10 * i, 10 * i + 8)) for i, c in enumerate(["seigaiha", "girih", "kente", "meander"])}
CULTURE_OF = {s: c for c, ids in POOL.items() for s in ids}


def spec(**design):
    d = {
        "trials_per_participant": 24,
        "order": "latin_square",
        "balance": ["stimulus_culture"],
        "attention_checks": 3,
    }
    d.update(design)
    return parse_study(study_document(design=d))


def test_williams_rows_are_latin_squares_balanced_for_carry_over():
    for n in (2, 3, 4, 5, 6):
        rows = williams_rows(n)
        assert len(rows) == (n if n % 2 == 0 else 2 * n)
        for row in rows:
            assert sorted(row) == list(range(n))
        for col in range(n):  # every condition in every position equally often
            assert Counter(row[col] for row in rows) == {c: len(rows) // n for c in range(n)}
        pairs = Counter((row[i], row[i + 1]) for row in rows for i in range(n - 1))
        assert len(set(pairs.values())) == 1  # each ordered pair follows equally often


def test_balance_gives_equal_counts_per_culture_within_each_question():
    trials = plan_trials(spec(trials_per_participant=24), POOL, seed=1, ordinal=0)
    ratings = [t for t in trials if t.kind in ("likert", "slider")]
    for question in ("liking", "beauty"):
        counts = Counter(CULTURE_OF[t.stimulus] for t in ratings if t.question_id == question)
        assert counts == {c: 2 for c in POOL}
    assert len([t for t in trials if t.kind != "attention"]) == 24


def test_choices_pair_two_cultures_and_counterbalance_sides():
    trials = [t for t in plan_trials(spec(), POOL, seed=3, ordinal=2) if t.kind == "choice"]
    assert len(trials) == 8
    assert all(CULTURE_OF[t.stimulus] != CULTURE_OF[t.stimulus_b] for t in trials)
    # Sides: within each pair of cultures as planned, the earlier culture sits left in half the trials.
    order = list(POOL)
    left_first = sum(
        order.index(CULTURE_OF[t.stimulus]) < order.index(CULTURE_OF[t.stimulus_b]) for t in trials
    )
    assert left_first == 4


def test_attention_checks_are_spread_and_never_first():
    trials = plan_trials(spec(), POOL, seed=5, ordinal=0)
    positions = [i for i, t in enumerate(trials) if t.kind == "attention"]
    assert len(positions) == 3 and positions[0] > 0
    assert all(1 <= t.expected <= 7 for t in trials if t.kind == "attention")
    gaps = [b - a for a, b in zip([0, *positions], [*positions, len(trials)])]
    assert max(gaps) - min(gaps) <= 2


def test_latin_square_rotates_the_culture_order_across_participants():
    s = spec(trials_per_participant=16, attention_checks=0)
    firsts = []
    for ordinal in range(4):
        ratings = [t for t in plan_trials(s, POOL, seed=ordinal, ordinal=ordinal) if t.kind != "choice"]
        firsts.append(tuple(CULTURE_OF[t.stimulus] for t in ratings[:4]))
    assert len(set(firsts)) == 4  # four rows, four different orders
    assert {f[0] for f in firsts} == set(POOL)  # each culture comes first for one participant


def test_random_order_is_reproducible_from_the_stored_seed():
    s = spec(order="random")
    assert plan_trials(s, POOL, seed=11, ordinal=0) == plan_trials(s, POOL, seed=11, ordinal=0)
    assert plan_trials(s, POOL, seed=11, ordinal=0) != plan_trials(s, POOL, seed=12, ordinal=0)


def test_without_balance_cultures_are_drawn_in_proportion():
    trials = plan_trials(
        spec(balance=[], trials_per_participant=400, attention_checks=0), POOL, seed=2, ordinal=0
    )
    counts = Counter(CULTURE_OF[t.stimulus] for t in trials if t.kind != "choice")
    assert set(counts) == set(POOL) and min(counts.values()) > 40


@pytest.mark.parametrize("order", ["latin_square", "random"])
def test_assigned_trials_are_stored_and_match_the_plan(app, client, load, order):
    slug = load(
        design={
            "trials_per_participant": 12,
            "order": order,
            "balance": ["stimulus_culture"],
            "attention_checks": 2,
        }
    )
    bots = [Bot(client, slug) for _ in range(3)]
    for bot in bots:
        bot.consent(), bot.background()
    with session_scope(app) as session:
        participants = session.scalars(select(Participant).order_by(Participant.id)).all()
        assert [p.ordinal for p in participants] == [0, 1, 2]
        for p in participants:
            rows = session.execute(
                select(Trial.kind, Stimulus.culture)
                .join(Stimulus, Stimulus.id == Trial.stimulus_id)
                .where(Trial.participant_id == p.id, Trial.kind.in_(["likert", "slider"]))
            ).all()
            per_culture = Counter(c for _, c in rows)
            assert max(per_culture.values()) - min(per_culture.values()) <= 1
            assert p.n_trials == 14


def same_content_spec():
    document = study_document(design={"trials_per_participant": 24, "order": "latin_square",
                                      "balance": ["stimulus_culture"], "attention_checks": 0})
    document["questions"][2]["pairs"] = "same_content"
    return parse_study(document)


# Style transfer: contents 0-2 in every culture (ids 10*i + content), plus cGAN images (no content) 10*i + 5..7.
CONTENT_OF = {10 * i + k: (f"scene{k}" if k < 3 else None) for i in range(4) for k in (0, 1, 2, 5, 6, 7)}
MIXED = {c: [10 * i + k for k in (0, 1, 2, 5, 6, 7)] for i, c in enumerate(["seigaiha", "girih", "kente", "meander"])}
MIXED_CULTURE = {s: c for c, ids in MIXED.items() for s in ids}


def test_same_content_choices_pair_two_cultures_versions_of_one_content_image():
    for ordinal in range(6):
        trials = plan_trials(same_content_spec(), MIXED, seed=ordinal, ordinal=ordinal, contents=CONTENT_OF)
        choices = [t for t in trials if t.kind == "choice"]
        assert len(choices) == 8
        for t in choices:
            assert CONTENT_OF[t.stimulus] is not None and CONTENT_OF[t.stimulus] == CONTENT_OF[t.stimulus_b]
            assert MIXED_CULTURE[t.stimulus] != MIXED_CULTURE[t.stimulus_b]
        # the 6 pairs of cultures come round in turn before any comes again; sides are counterbalanced
        pairs = [frozenset((MIXED_CULTURE[t.stimulus], MIXED_CULTURE[t.stimulus_b])) for t in choices]
        assert len(set(pairs[:6])) == 6 and sorted(Counter(pairs).values()) == [1] * 4 + [2] * 2
        order = list(MIXED)
        sides = [(order.index(MIXED_CULTURE[t.stimulus]), order.index(MIXED_CULTURE[t.stimulus_b])) for t in choices]
        left_first = [a < b for a, b in sides]
        assert sum(left_first) == 4
        # ratings still draw from every image, with or without content
        rated = {t.stimulus for t in trials if t.kind != "choice"}
        assert any(CONTENT_OF[s] is None for s in rated) and any(CONTENT_OF[s] for s in rated)


def test_same_content_choices_use_every_shared_content_image_across_rounds():
    seen = Counter()
    for ordinal in range(12):
        trials = plan_trials(same_content_spec(), MIXED, seed=ordinal, ordinal=ordinal, contents=CONTENT_OF)
        seen.update(CONTENT_OF[t.stimulus] for t in trials if t.kind == "choice")
    assert set(seen) == {"scene0", "scene1", "scene2"} and max(seen.values()) < 2 * min(seen.values())


def test_pairs_belongs_to_choice_questions_only():
    document = study_document()
    document["questions"][0]["pairs"] = "same_content"
    with pytest.raises(StudyError, match="only a choice question has pairs"):
        parse_study(document)


def test_a_same_content_choice_needs_a_content_image_in_two_cultures():
    spec = same_content_spec()
    cgan = ("cgan", ["seigaiha", "kente"], [("s-1", "seigaiha", None), ("k-1", "kente", None)])
    one_culture = ("nst", ["kente"], [("house-kente", "kente", "house"), ("boat-kente", "kente", "boat")])
    problems = set_problems(spec, [cgan, one_culture])
    assert problems == [
        "questions.preference: pairs: same_content needs a content image in at least two cultures (a style "
        "transfer or translation set); the stimulus sets have none"
    ]
    two = ("nst2", ["seigaiha"], [("house-seigaiha", "seigaiha", "house")])
    assert set_problems(spec, [cgan, one_culture, two]) == []
