"""Synthetic prediction/feedback events for monitor tests and benchmarks: in-distribution transit
questions (formal schedule phrasing) and a shifted stream (colloquial questions about detours,
new lines and disruptions), with matching shifts in answer length and model confidence."""

from __future__ import annotations

import random
import time
import uuid

from driftloop.core.timestamps import timestamp
from driftloop.v1 import events_pb2

STOPS = ["Central Station", "Harbour Square", "City Hall", "the University", "Riverside", "the Airport",
         "Oak Park", "Market Street", "the Stadium", "North Terminal", "Westgate", "the Hospital"]
ROUTES = ["route 1", "route 4", "route 7", "route 12", "route 15", "route 22", "line A", "line B"]
DAYS = ["weekdays", "Saturdays", "Sundays", "public holidays"]
FORMAL = [
    "What time does {route} depart from {stop} on {day}?",
    "How often does {route} run on {day}?",
    "Which terminal does {route} end at?",
    "Is {stop} served by {route}?",
    "What is the first departure of {route} from {stop}?",
    "How much is a single fare on {route}?",
    "Is {route} wheelchair accessible?",
    "When is the last {route} service from {stop} on {day}?",
]
SHIFTED = [
    "yo is {route} even running w/ the {event} detour??",
    "bus skipped {stop} again, where do i catch it now",
    "new {newline} — does it go past {stop} or nah",
    "stuck at {stop}, {route} is like 40 min late, whats going on",
    "can i still use my old pass on the {newline}",
    "why is {route} rerouted thru {stop} today lol",
    "any {newline} buses after midnight during the {event}?",
    "heard {route} got cut on sundays, true??",
]
EVENTS = ["marathon", "parade", "roadworks", "bridge closure", "festival", "snow"]
NEW_LINES = ["express X1", "night line N3", "shuttle S9", "rapid line R2", "crosstown C5"]


def prompt(rng: random.Random, shifted: bool) -> str:
    template = rng.choice(SHIFTED if shifted else FORMAL)
    return template.format(route=rng.choice(ROUTES), stop=rng.choice(STOPS), day=rng.choice(DAYS),
                           event=rng.choice(EVENTS), newline=rng.choice(NEW_LINES))


def prediction(rng: random.Random, shifted: bool, model: str = "transit-base", alias: str = "transit-qa",
               version: str = "v1", request_id: str | None = None, t: float | None = None,
               error: bool = False) -> events_pb2.PredictionEvent:
    p = prompt(rng, shifted)
    t = time.time() if t is None else t
    completion_tokens = max(1, int(rng.gauss(14 if shifted else 18, 4)))
    e = events_pb2.PredictionEvent(
        request_id=request_id or uuid.uuid4().hex, model=model, adapter_alias=alias, adapter_version=version,
        prompt=p, completion="Route 12 departs every 10 minutes." if not error else "",
        prompt_tokens=len(p.split()) + 2, completion_tokens=completion_tokens,
        mean_token_logprob=rng.gauss(-1.4 if shifted else -0.5, 0.15),
        finish_reason="error" if error else "stop", latency_seconds=abs(rng.gauss(0.08, 0.02)),
        error_code="INTERNAL" if error else "", replica="sim",
    )
    e.request_time.CopyFrom(timestamp(t))
    e.response_time.CopyFrom(timestamp(t + e.latency_seconds))
    return e


def feedback(rng: random.Random, request_id: str, negative: bool, correction: str = "") -> events_pb2.FeedbackEvent:
    e = events_pb2.FeedbackEvent(
        feedback_id=uuid.uuid4().hex, request_id=request_id,
        rating=events_pb2.RATING_NEGATIVE if negative else events_pb2.RATING_POSITIVE, correction=correction,
    )
    e.time.GetCurrentTime()
    return e
