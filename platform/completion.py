"""The end of a participant's journey: the completion code, and where the participant goes next.

A participant from a link or Prolific goes back to the study's completion URL (the code in it). An MTurk
worker gets no redirect: they finish by submitting the HIT (`mturk_submit`), which ends the assignment on
MTurk's side; a redirect would leave it open.
"""

from __future__ import annotations

from typing import Any

from culturelab.platform.models import Participant
from culturelab.platform.study_specs import spec_of

# Where an MTurk HIT's answer goes: the worker's browser posts the assignment id there (ExternalQuestion).
MTURK_SUBMIT_HOSTS = ("www.mturk.com", "workersandbox.mturk.com")


def completion(participant: Any) -> dict[str, Any]:
    """The API's end of the journey (``participant``: a Participant or a journey.ParticipantState)."""
    url = spec_of(participant.study).recruitment.completion_url
    if participant.source == "mturk":
        url = None
    return {
        "done": True,
        "completion_code": participant.completion_code,
        "redirect_url": url.replace("{code}", participant.completion_code or "") if url else None,
    }


def mturk_submit(participant: Participant) -> dict[str, Any] | None:
    """The form that submits a finished MTurk assignment (its action and hidden fields), or None."""
    recruitment = participant.recruitment or {}
    if participant.source != "mturk" or "assignmentId" not in recruitment or participant.status != "completed":
        return None
    host = recruitment.get("turkSubmitTo")
    host = host if host in MTURK_SUBMIT_HOSTS else MTURK_SUBMIT_HOSTS[0]
    return {
        "action": f"https://{host}/mturk/externalSubmit",
        "fields": {"assignmentId": recruitment["assignmentId"], "completion_code": participant.completion_code},
    }
