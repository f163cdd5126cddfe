"""What a participant's browser may know of a stimulus: an opaque id, never its culture, set or method.

A stimulus's manifest id ("girih-0007") and even its sha256 (which the set's public manifest lists beside
its culture) would tell anyone with the browser's developer tools which condition an image belongs to. So
participants see, in trial payloads and in image URLs, an id made by HMAC-SHA256 under the server's secret
key from the study, the stimulus id and the image's sha256: the same for every participant of a study (the
browser may cache images), different between studies, and meaningless without the key. A new image under
an old id gets a new opaque id, so cached images never go stale. Exports keep the real ids.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import current_app
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from culturelab.platform.models import Stimulus, Study, study_stimulus_sets

# 96 bits: no collision among a study's images, and no guessing of another study's.
LENGTH = 24

_stimuli, _studies = Stimulus.__table__, Study.__table__
_STUDY_VERSION = select(_studies.c.spec_sha256).where(_studies.c.id == bindparam("study_id"))
_STUDY_IMAGES = (
    select(_stimuli.c.key, _stimuli.c.sha256)
    .join(study_stimulus_sets, study_stimulus_sets.c.set_id == _stimuli.c.set_id)
    .where(study_stimulus_sets.c.study_id == bindparam("study_id"))
)

# Per worker: (database, study id) -> (spec version, {opaque id: sha256}). A study's stimulus sets are part of
# its spec version (study_load) and a set's images never change, so a reloaded study with other sets gets
# its table rebuilt, and only then.
_tables: dict[tuple[str, int], tuple[str, dict[str, str]]] = {}


def opaque_id(study_id: int, stimulus_key: str, sha256: str, secret: str | bytes | None = None) -> str:
    key = secret if secret is not None else current_app.config["SECRET_KEY"]
    key = key.encode() if isinstance(key, str) else key
    message = f"culturelab.stimulus/1:{study_id}:{stimulus_key}:{sha256}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:LENGTH]


def image_sha256(session: Session, study_id: int, opaque: str) -> str | None:
    """The sha256 (the media file's name) of the study's image with this opaque id, or None."""
    connection = session.connection()
    version = connection.scalar(_STUDY_VERSION, {"study_id": study_id})
    if version is None:
        return None
    where = (current_app.config["DATABASE_URL"], study_id)
    cached = _tables.get(where)
    if cached is None or cached[0] != version:
        secret = current_app.config["SECRET_KEY"]
        table = {
            opaque_id(study_id, key, sha256, secret): sha256
            for key, sha256 in connection.execute(_STUDY_IMAGES, {"study_id": study_id})
        }
        # Threads racing here build the same table; either assignment stands.
        _tables[where] = cached = (version, table)
    return cached[1].get(opaque)
