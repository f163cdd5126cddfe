"""The project's participant bot (culturelab.platform.bots) over Flask's test client, for the tests."""

from __future__ import annotations

from culturelab.platform.bots import Participant, Reply


class FlaskTransport:
    def __init__(self, client):
        self.client = client

    def request(self, method: str, path: str, body: dict | None = None) -> Reply:
        r = self.client.open(path, method=method, json=body)
        return Reply(r.status_code, r.content_type or "", r.get_data())


class Bot(Participant):
    """A participant created at once (asserting it was), with `complete` walking every trial."""

    def __init__(self, client, slug: str, **options):
        super().__init__(FlaskTransport(client), slug, **options)
        r = self.create()
        assert r.status_code in (200, 201), r.get_json()

    def complete(self, group: str = "east_asian") -> dict:
        assert self.consent().status_code == 200
        assert self.background(group).status_code == 200
        nxt = self.next()
        while not nxt["done"]:
            r = self.answer(nxt["trial"])
            assert r.status_code == 201, r.get_json()
            nxt = r.get_json()["next"]
        return nxt
