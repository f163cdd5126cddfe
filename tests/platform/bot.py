"""A participant bot (oTree's idea): walks the API the way the browser page does."""

from __future__ import annotations

import uuid


class Bot:
    def __init__(
        self, client, slug: str, *, language: str = "en", external_id: str | None = None, source=None,
        recruitment: dict | None = None,
    ):
        self.client, self.slug = client, slug
        body = {"language": language}
        if external_id:
            body["external_id"] = external_id
        if source:
            body["source"] = source
        if recruitment:
            body["recruitment"] = recruitment
        r = client.post(f"/api/v1/studies/{slug}/participants", json=body)
        assert r.status_code in (200, 201), r.get_json()
        self.token, self.resume = r.get_json()["token"], r.get_json()["resume"]
        self.base = f"/api/v1/participants/{self.token}"

    def consent(self, value: bool = True):
        return self.client.post(f"{self.base}/consent", json={"consent": value})

    def background(self, group: str = "east_asian", **extra):
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
        return self.client.post(f"{self.base}/background", json=body)

    def next(self):
        return self.client.get(f"{self.base}/next").get_json()

    def answer(self, trial: dict, value=None, response_id=None, rt_ms=800):
        if value is None:
            value = self.good_value(trial)
        body = {
            "trial_id": trial["id"],
            "response_id": response_id or str(uuid.uuid4()),
            "value": value,
            "rt_ms": rt_ms,
        }
        return self.client.post(f"{self.base}/responses", json=body)

    @staticmethod
    def good_value(trial: dict) -> int:
        if trial["kind"] == "attention":
            # The instructed answer is the number in the instruction.
            return int("".join(c for c in trial["question"]["text"] if c.isdigit()))
        if trial["kind"] == "choice":
            return 1
        return trial["question"]["scale"]["max"]

    def complete(self, group: str = "east_asian") -> dict:
        assert self.consent().status_code == 200
        assert self.background(group).status_code == 200
        nxt = self.next()
        while not nxt["done"]:
            r = self.answer(nxt["trial"])
            assert r.status_code == 201, r.get_json()
            nxt = r.get_json()["next"]
        return nxt
