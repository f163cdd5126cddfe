"""Simulated participants (oTree's bots): they walk the participant API over HTTP the way the browser page
does, image downloads included, so they find what a person would find, a broken image first of all.

One bot, used by `culturelab bots`, `culturelab demo`, the tests (over Flask's test client) and
benchmarks/load.py (over gevent connections). A bot answers by a profile:

- ``honest``: a latent liking per trial, ``in_group_d * match + person + image + noise`` (standard deviations
  0.5, 0.3 and 0.8, so ``in_group_d`` is close to Cohen's d), turned into the question's scale; passes the
  attention checks; takes 0.8–4 s per answer.
- ``careless``: uniform random answers, half of the attention checks failed, 0.3–1 s per answer.
- ``fast``: answers like ``honest`` but in 80–250 ms (the analysis's too-fast rule should drop them).

A participant cannot see which culture an image belongs to (its id is opaque), so a bot that plants an
in-group effect recognises each image by the sha256 of the bytes it downloaded, looked up in the study's
stimulus sets (`StudyKnowledge`), as only someone holding the sets could.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import math
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

PROFILES = ("honest", "careless", "fast")


@dataclass
class Reply:
    """An HTTP reply, with the two names of Flask's test response that callers use."""

    status_code: int
    content_type: str
    data: bytes

    def get_json(self) -> Any:
        return json.loads(self.data) if self.data else None


class Transport(Protocol):
    def request(self, method: str, path: str, body: dict | None = None) -> Reply: ...


class HttpTransport:
    """One keep-alive connection, like a browser tab; reopened once when the server closed it meanwhile."""

    def __init__(self, base_url: str, timeout: float = 30):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        connection = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self._connect = lambda: connection(parts.hostname, parts.port, timeout=timeout)
        self.prefix = parts.path.rstrip("/")
        self.connection = self._connect()

    def request(self, method: str, path: str, body: dict | None = None) -> Reply:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (0, 1):
            try:
                self.connection.request(method, self.prefix + path, body=data, headers=headers)
                response = self.connection.getresponse()
                return Reply(response.status, response.getheader("Content-Type", ""), response.read())
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A kept-alive connection the server had closed: the request never reached a worker.
                self.connection.close()
                self.connection = self._connect()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.connection.close()


def pixels_sha256(png: bytes) -> str:
    """How a bot recognises an image: the sha256 of its pixels. The server serves each image encoded anew
    (stimuli.served_png), so the bytes a browser gets match no set file's, while the pixels do."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return hashlib.sha256(image.convert("RGBA").tobytes()).hexdigest()


@dataclass
class StudyKnowledge:
    """What a bot knows that a participant does not: the groups, which cultures each owns, and each image's
    culture by its pixels (`pixels_sha256`)."""

    slug: str
    groups: list[str]
    languages: list[str]
    match: dict[str, list[str]]
    culture_by_pixels: dict[str, str]

    @classmethod
    def from_study_file(cls, path: Path) -> StudyKnowledge:
        """From a study file and its stimulus sets (for a server elsewhere); raises StudyError/StimulusSetError."""
        from culturelab.platform.stimuli import read_manifest
        from culturelab.platform.study import read_study

        spec = read_study(path)
        cultures = {}
        for folder in spec.stimulus_sets:
            folder = (path.parent / folder).resolve()
            manifest, _ = read_manifest(folder)
            cultures.update({pixels_sha256((folder / e.file).read_bytes()): e.culture for e in manifest.stimuli})
        return cls(spec.slug, [g.id for g in spec.culture_groups], list(spec.languages), dict(spec.match), cultures)

    @classmethod
    def from_database(cls, session, slug: str, media_dir: Path) -> StudyKnowledge | None:
        """From a loaded study and its stored images (the app's MEDIA_DIR)."""
        from sqlalchemy import select

        from culturelab.platform.models import Stimulus, Study

        study = session.scalar(select(Study).where(Study.slug == slug))
        if study is None:
            return None
        spec = study.spec
        rows = session.execute(
            select(Stimulus.sha256, Stimulus.culture).where(
                Stimulus.set_id.in_([s.id for s in study.stimulus_sets])
            )
        )
        return cls(
            slug,
            [g["id"] for g in spec["culture_groups"]],
            list(spec["languages"]),
            dict(spec["match"]),
            {pixels_sha256((media_dir / f"{sha}.png").read_bytes()): culture for sha, culture in rows},
        )


def instructed_answer(question: str) -> int:
    """The answer an attention check asks for: the number written in its instruction, in any language."""
    return int(re.search(r"\d+", question).group())


@dataclass
class Tally:
    """What a run of bots saw; tallies of single bots add up."""

    started: int = 0
    completed: int = 0
    failed: int = 0
    responses: int = 0
    images: int = 0
    errors: Counter = field(default_factory=Counter)  # "step status" -> count
    acknowledged: list[str] = field(default_factory=list)  # response_ids the server acknowledged
    latencies: dict[str, list[float]] = field(default_factory=dict)  # step -> seconds

    def add(self, other: Tally) -> None:
        for name in ("started", "completed", "failed", "responses", "images"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.update(other.errors)
        self.acknowledged.extend(other.acknowledged)
        for step, values in other.latencies.items():
            self.latencies.setdefault(step, []).extend(values)


class StepFailed(Exception):
    """A step got a reply it should not have; the bot stops and counts a failure."""


class Participant:
    """One simulated participant on the API. The step methods return the server's replies (the tests drive them
    one by one); `walk` takes the whole study with the bot's profile."""

    def __init__(
        self,
        transport: Transport,
        slug: str,
        *,
        language: str = "en",
        external_id: str | None = None,
        source: str | None = None,
        recruitment: dict | None = None,
        profile: str = "honest",
        in_group_d: float = 0.0,
        knowledge: StudyKnowledge | None = None,
        rng: random.Random | None = None,
        think: Callable[[], None] | None = None,
        fetch_images: bool = True,
    ):
        if profile not in PROFILES:
            raise ValueError(f"unknown bot profile {profile!r} (one of {', '.join(PROFILES)})")
        self.transport, self.slug, self.language = transport, slug, language
        self.external_id, self.source, self.recruitment = external_id, source, recruitment
        self.profile, self.in_group_d, self.knowledge = profile, in_group_d, knowledge
        self.rng = rng or random.Random()
        self.think = think or (lambda: None)
        self.fetch_images = fetch_images
        self.tally = Tally()
        self.token: str | None = None
        self.resume = False
        self.group: str | None = None
        self.person = self.rng.gauss(0, 0.5)  # this person's general liking (random intercept)

    # -- the API's steps ------------------------------------------------------------------------------------

    def call(self, step: str, method: str, path: str, body: dict | None = None) -> Reply:
        start = time.perf_counter()
        reply = self.transport.request(method, path, body)
        self.tally.latencies.setdefault(step, []).append(time.perf_counter() - start)
        return reply

    @property
    def base(self) -> str:
        return f"/api/v1/participants/{self.token}"

    def create(self) -> Reply:
        body: dict[str, Any] = {"language": self.language}
        for name in ("external_id", "source", "recruitment"):
            if getattr(self, name):
                body[name] = getattr(self, name)
        reply = self.call("create", "POST", f"/api/v1/studies/{self.slug}/participants", body)
        if reply.status_code in (200, 201):
            document = reply.get_json()
            self.token, self.resume = document["token"], document["resume"]
        return reply

    def consent(self, value: bool = True) -> Reply:
        return self.call("consent", "POST", f"{self.base}/consent", {"consent": value})

    def background(self, group: str = "east_asian", **extra) -> Reply:
        self.group = group
        body = {
            "culture_group": group,
            "country_of_birth": "JP",
            "country_of_residence": "GB",
            "languages": ["ja", "en"],
            "age": 30,
            "gender": "female",
            "art_training": 1,
            **extra,
        }
        return self.call("background", "POST", f"{self.base}/background", body)

    def next(self) -> dict:
        return self.call("next", "GET", f"{self.base}/next").get_json()

    def answer(self, trial: dict, value=None, response_id: str | None = None, rt_ms: int = 800,
               hidden_ms: int | None = None) -> Reply:
        body = {
            "trial_id": trial["id"],
            "response_id": response_id or str(uuid.uuid4()),
            "value": self.good_value(trial) if value is None else value,
            "rt_ms": rt_ms,
        }
        if hidden_ms is not None:
            body["hidden_ms"] = hidden_ms
        return self.call("response", "POST", f"{self.base}/responses", body)

    @staticmethod
    def good_value(trial: dict) -> int:
        """A valid answer that passes an attention check: the instructed one, else the scale's top."""
        if trial["kind"] == "attention":
            return instructed_answer(trial["question"]["text"])
        if trial["kind"] == "choice":
            return 1
        return trial["question"]["scale"]["max"]

    # -- the whole journey ----------------------------------------------------------------------------------

    def walk(self, group: str) -> Tally:
        """Takes the study from sign-up to the completion code; never raises for what the server answers."""
        self.tally.started += 1
        try:
            self._expect("create", self.create(), 200, 201)
            self.think()
            self._expect("consent", self.consent(), 200)
            self.think()
            self._expect("background", self.background(group), 200)
            nxt = self._expect("next", self.call("next", "GET", f"{self.base}/next"), 200)
            while not nxt["done"]:
                trial = nxt["trial"]
                images = [self._look_at(s) if self.fetch_images else s["id"] for s in trial["stimuli"]]
                self.think()
                response_id = str(uuid.uuid4())
                value, rt_ms = self.decide(trial, images)
                away = self.time_away()  # the page's clock runs on while it is hidden
                reply = self.answer(trial, value=value, response_id=response_id, rt_ms=rt_ms + away, hidden_ms=away)
                nxt = self._expect("response", reply, 200, 201)["next"]
                self.tally.responses += 1
                self.tally.acknowledged.append(response_id)
            self.tally.completed += 1
        except (StepFailed, OSError, http.client.HTTPException, ValueError, KeyError) as exc:
            if not isinstance(exc, StepFailed):
                self.tally.errors[f"connection {type(exc).__name__}"] += 1
            self.tally.failed += 1
        return self.tally

    def _expect(self, step: str, reply: Reply, *ok: int) -> Any:
        if reply.status_code not in ok:
            document = reply.get_json() if reply.content_type.startswith("application/json") else None
            code = (document or {}).get("error", {}).get("code", "")
            self.tally.errors[f"{step} {reply.status_code} {code}".strip()] += 1
            raise StepFailed(step)
        return reply.get_json()

    def _look_at(self, stimulus: dict) -> str:
        """Downloads the image as the page would; returns the sha256 of its pixels."""
        reply = self.call("image", "GET", stimulus["url"])
        if reply.status_code != 200 or not reply.content_type.startswith("image/"):
            self.tally.errors[f"image {reply.status_code}"] += 1
            raise StepFailed("image")
        self.tally.images += 1
        return pixels_sha256(reply.data)

    def _liking(self, image: str) -> float:
        """Latent liking in SD units: in-group effect + person + image (the same for everyone) + noise."""
        owned = False
        if self.knowledge is not None:
            owned = self.knowledge.culture_by_pixels.get(image) in self.knowledge.match.get(self.group, [])
        appeal = random.Random(image).gauss(0, 0.3)
        return self.in_group_d * owned + self.person + appeal + self.rng.gauss(0, 0.8)

    def time_away(self) -> int:
        """How long the page was hidden during the trial: a careless participant looks elsewhere on one
        trial in four, for 5-30 s; the others stay on the page."""
        if self.profile == "careless" and self.rng.random() < 0.25:
            return self.rng.randint(5000, 30000)
        return 0

    def decide(self, trial: dict, images: list[str]) -> tuple[int, int]:
        """(value, rt_ms) for a trial, by the bot's profile; ``images``: each image's `pixels_sha256` (its
        opaque id when the bot does not download images, so it cannot know their cultures)."""
        rng, kind = self.rng, trial["kind"]
        scale = trial["question"]["scale"]
        if self.profile == "careless":
            rt = rng.randint(300, 1000)
            if kind == "choice":
                return rng.randint(0, 1), rt
            if kind == "attention" and rng.random() < 0.5:
                return instructed_answer(trial["question"]["text"]), rt
            return rng.randint(scale["min"], scale["max"]), rt
        rt = rng.randint(80, 250) if self.profile == "fast" else int(min(4000, 800 + rng.expovariate(1 / 900)))
        if kind == "attention":
            return instructed_answer(trial["question"]["text"]), rt
        if kind == "choice":
            difference = self._liking(images[1]) - self._liking(images[0])
            return int(rng.random() < 1 / (1 + math.exp(-1.7 * difference))), rt
        latent = self._liking(images[0])
        low, high = scale["min"], scale["max"]
        # The scale's middle at 0, its ends at about +-2 SD.
        value = round((low + high) / 2 + latent * (high - low) / 4)
        return min(high, max(low, value)), rt


def profile_for(index: int, profile: str | None) -> str:
    """One profile for all, or the demo's mix: one in twelve careless, one in twenty-five fast."""
    if profile:
        return profile
    return "careless" if index % 12 == 11 else "fast" if index % 25 == 24 else "honest"


def run_bots(
    transport_for: Callable[[], Transport],
    knowledge: StudyKnowledge,
    n: int,
    *,
    profile: str | None = "honest",
    in_group_d: float = 0.0,
    seed: int = 0,
    concurrency: int = 8,
    think_s: float = 0.0,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
) -> tuple[Tally, float]:
    """Runs ``n`` bots, ``concurrency`` at a time, each in its own thread and connection, pausing about
    ``think_s`` before each step; returns the tally and the wall time in seconds. Groups and languages go
    round in turn, so a run fills the groups evenly."""

    def one(index: int) -> Tally:
        transport = transport_for()
        rng = random.Random(seed * 1_000_003 + index)
        try:
            participant = Participant(
                transport,
                knowledge.slug,
                language=knowledge.languages[index % len(knowledge.languages)],
                profile=profile_for(index, profile),
                in_group_d=in_group_d,
                knowledge=knowledge,
                rng=rng,
                think=(lambda: time.sleep(think_s * rng.uniform(0.5, 1.5))) if think_s else None,
            )
            return participant.walk(knowledge.groups[index % len(knowledge.groups)])
        finally:
            close = getattr(transport, "close", None)
            if close:
                close()

    total = Tally()
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, n))) as pool:
        for future in progress(as_completed([pool.submit(one, i) for i in range(n)])):
            total.add(future.result())
    return total, time.perf_counter() - start
