"""Which trials a participant sees, in which order (the study's `design`).

Everything is derived from the participant's stored seed and ordinal (their place in the order of
assignment), so a plan can be reproduced and audited later, and no state lives in a worker process.

- Questions share the trials evenly; `balance: [stimulus_culture]` gives each culture condition equal
  counts within a question (a remainder rotates with the ordinal, so it evens out across participants).
- Choice trials pair two different cultures, cycling through every pair; left/right is counterbalanced
  (half of each participant's pairs are swapped) and stored with the trial. With `pairs: same_content` the
  two images are two cultures' versions of one content image (style transfer, translation), cycling
  through the pairs of cultures and, round by round, through the content images they share.
- `order: latin_square` orders culture conditions by the rows of a Williams design (a Latin square
  balanced for first-order carry-over), row = ordinal mod number of rows; `random` shuffles with the seed.
- Attention checks (instructed-response items) are spread evenly, never first.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from culturelab.platform.study import StudySpec

ATTENTION_QUESTION = "attention"


@dataclass(frozen=True)
class PlannedTrial:
    kind: str
    question_id: str
    stimulus: int
    stimulus_b: int | None = None
    expected: int | None = None


def williams_rows(n: int) -> list[list[int]]:
    """Rows of a Williams design for n conditions (n rows if n is even, 2n if odd)."""
    if n == 1:
        return [[0]]
    first, lo, hi = [0], 1, n - 1
    while len(first) < n:
        first.append(lo)
        lo += 1
        if len(first) < n:
            first.append(hi)
            hi -= 1
    rows = [[(c + r) % n for c in first] for r in range(n)]
    if n % 2:
        rows += [row[::-1] for row in rows]
    return rows


class _Pools:
    """Draws stimuli per culture without replacement, reshuffling a culture's pool only when it runs out."""

    def __init__(self, by_culture: dict[str, list[int]], rng: random.Random):
        self.by_culture, self.rng, self.queues = by_culture, rng, {c: [] for c in by_culture}

    def draw(self, culture: str, avoid: int | None = None) -> int:
        queue = self.queues[culture]
        if not queue:
            queue.extend(self.by_culture[culture])
            self.rng.shuffle(queue)
        if avoid is not None and queue[-1] == avoid and len(queue) > 1:
            queue[-1], queue[0] = queue[0], queue[-1]
        return queue.pop()


def _split(total: int, parts: int, rotate: int) -> list[int]:
    """Splits total into parts as evenly as possible; which parts get the remainder rotates."""
    counts = [total // parts] * parts
    for i in range(total % parts):
        counts[(rotate + i) % parts] += 1
    return counts


def _versions_pairs(
    cultures: list[str], by_culture: dict[str, list[int]], contents: dict[int, str | None], rng: random.Random
) -> list[tuple[list[int], list[int]]]:
    """For a same-content choice: every pair of cultures that share content images, and for each shared content
    image the two cultures' versions of it, as (versions in culture a, versions in culture b), in rounds: each
    round visits every pair of cultures once, with its next shared content image (in the participant's order)."""
    versions: dict[tuple[str, str], list[int]] = {}
    for culture in cultures:
        for stimulus in by_culture[culture]:
            if contents.get(stimulus) is not None:
                versions.setdefault((contents[stimulus], culture), []).append(stimulus)
    shared = {}
    for a, b in itertools.combinations(cultures, 2):
        both = sorted({c for c, k in versions if k == a} & {c for c, k in versions if k == b})
        if both:
            rng.shuffle(both)
            shared[(a, b)] = both
    rounds = max(len(v) for v in shared.values())
    return [
        (versions[(both[r % len(both)], a)], versions[(both[r % len(both)], b)])
        for r in range(rounds)
        for (a, b), both in shared.items()
    ]


def plan_trials(
    spec: StudySpec,
    by_culture: dict[str, list[int]],
    seed: int,
    ordinal: int,
    contents: dict[int, str | None] | None = None,
) -> list[PlannedTrial]:
    """The participant's trials in the order shown. ``by_culture`` maps culture -> stimulus ids (non-empty);
    ``contents`` maps stimulus id -> content image id, for same-content choices."""
    rng = random.Random(seed)
    design = spec.design
    cultures = list(by_culture)
    pools = _Pools(by_culture, rng)
    rows = williams_rows(len(cultures))
    culture_order = [cultures[i] for i in rows[ordinal % len(rows)]]

    queues: dict[str, list[PlannedTrial]] = {c: [] for c in cultures}  # rating trials by culture
    choices: list[PlannedTrial] = []
    per_question = _split(design.trials_per_participant, len(spec.questions), ordinal)
    for question, n in zip(spec.questions, per_question):
        if question.kind == "choice":
            # What to pair, in the order to cycle through, and how to draw one image from each side.
            if question.pairs == "same_content":
                options = _versions_pairs(cultures, by_culture, contents or {}, rng)

                def draw(a, b):
                    return rng.choice(a), rng.choice(b)
            else:
                options = list(itertools.combinations(cultures, 2)) or [(cultures[0], cultures[0])]
                if "stimulus_culture" not in design.balance:
                    rng.shuffle(options)

                def draw(a, b):
                    left = pools.draw(a)
                    return left, pools.draw(b, avoid=left)

            offset = ordinal % len(options)
            swaps = [i % 2 == 1 for i in range(n)]
            rng.shuffle(swaps)
            for i, swap in enumerate(swaps):
                left, right = draw(*options[(offset + i) % len(options)])
                if swap:
                    left, right = right, left
                choices.append(PlannedTrial("choice", question.id, left, right))
        else:
            if "stimulus_culture" in design.balance:
                counts = _split(n, len(cultures), ordinal)
                drawn = [c for c, k in zip(cultures, counts) for _ in range(k)]
            else:
                weights = [len(by_culture[c]) for c in cultures]
                drawn = rng.choices(cultures, weights=weights, k=n)
            for culture in drawn:
                queues[culture].append(PlannedTrial(question.kind, question.id, pools.draw(culture)))

    if design.order == "latin_square":
        for queue in queues.values():
            rng.shuffle(queue)
        ratings: list[PlannedTrial] = []
        while any(queues.values()):
            ratings.extend(queues[c].pop() for c in culture_order if queues[c])
        trials = _interleave(ratings, choices)
    else:
        trials = [t for q in queues.values() for t in q] + choices
        rng.shuffle(trials)

    if design.attention_checks:
        likert = next((q for q in spec.questions if q.kind == "likert"), None)
        low, high = likert.bounds if likert else (1, 5)
        total = len(trials) + design.attention_checks
        slots = {
            round((j + 1) * total / (design.attention_checks + 1)) for j in range(design.attention_checks)
        }
        slots = sorted(min(max(s, 1), total - 1) for s in slots)
        for slot in slots:
            culture = rng.choice(cultures)
            check = PlannedTrial(
                "attention", ATTENTION_QUESTION, pools.draw(culture), expected=rng.randint(low, high)
            )
            trials.insert(slot, check)
    return trials


def _interleave(main: list[PlannedTrial], other: list[PlannedTrial]) -> list[PlannedTrial]:
    """Spreads ``other`` evenly through ``main``, keeping both orders."""
    total = len(main) + len(other)
    slots = {int((j + 0.5) * total / len(other)) for j in range(len(other))} if other else set()
    it_main, it_other = iter(main), iter(other)
    return [next(it_other) if i in slots else next(it_main) for i in range(total)]
