"""The transit world: a city agency's routes and the questions riders ask about them.

Deterministic from a seed. The *old* world is what the base model learns; the *new* world is the
scripted change (a new schedule on some routes, detours, new routes) after which the served model
is wrong on the changed part. Every question type has many phrasings, formal and colloquial,
split into phrasings the model is trained on and phrasings held out to measure generalisation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

STREETS = ["Market Street", "Harbour Road", "Oak Avenue", "Station Square", "Mill Lane", "King Street",
           "Park Drive", "River Walk", "Queen Street", "Hill Road", "Canal Street", "Bridge Road"]
PLACES = ["Central Station", "the Airport", "the University", "City Hall", "Riverside", "North Terminal",
          "Westgate", "the Hospital", "Oak Park", "the Stadium", "Harbour Square", "Eastfield", "Lakeside",
          "the Zoo", "Old Town", "Southport"]
FREQUENCIES = [5, 6, 8, 10, 12, 15, 20, 30]
FARES = {1: "2.50", 2: "3.20", 3: "4.10"}


@dataclass(frozen=True)
class Route:
    number: int
    terminal: str
    origin: str
    every_min: int
    first: str
    last: str
    zone: int
    accessible: bool
    detour: str = ""  # street the route is detoured via, if any

    @property
    def name(self) -> str:
        return f"route {self.number}"


# question kind -> (formal phrasings, colloquial phrasings); {r} is the route name
PHRASINGS: dict[str, tuple[list[str], list[str]]] = {
    "frequency": (
        ["How often does {r} run?", "What is the frequency of {r}?", "How frequently does {r} operate?",
         "At what interval does {r} depart?", "How many minutes are there between buses on {r}?",
         "What is the service interval on {r}?"],
        ["how often is {r}", "how long do i wait for {r}", "{r} comes every how many mins?",
         "whats the wait on {r}", "how frequent is {r} these days", "how often do {r} buses come by"],
    ),
    "terminal": (
        ["Where does {r} terminate?", "What is the final stop of {r}?", "Which terminal does {r} end at?",
         "Where is the last stop of {r}?", "What is the destination of {r}?", "Where does {r} finish its trip?"],
        ["where does {r} end", "last stop on {r}?", "where does {r} go to", "{r} ends where",
         "whats the end of the line for {r}", "where do i end up on {r}"],
    ),
    "first": (
        ["When does the first {r} depart?", "What time is the first departure of {r}?",
         "When does {r} start running?", "What is the earliest service on {r}?",
         "At what time does {r} begin service?", "When is the first bus on {r}?"],
        ["first {r} is when", "when does {r} start", "earliest {r}?", "what time does {r} start in the morning",
         "when can i catch the first {r}", "how early does {r} run"],
    ),
    "last": (
        ["When does the last {r} depart?", "What time is the last departure of {r}?",
         "When does {r} stop running?", "What is the latest service on {r}?", "When does service on {r} end?",
         "When is the final bus on {r}?"],
        ["last {r} is when", "when does {r} stop", "latest {r}?", "how late does {r} run",
         "when is the last {r} at night", "till when does {r} run"],
    ),
    "fare": (
        ["How much is a single fare on {r}?", "What does a ticket for {r} cost?", "What is the fare on {r}?",
         "How much does it cost to ride {r}?", "What is the price of a ticket on {r}?",
         "How much must I pay to travel on {r}?"],
        ["how much is {r}", "{r} ticket price?", "whats it cost to ride {r}", "how much for {r}",
         "fare for {r}?", "how much do i pay on {r}"],
    ),
    "accessible": (
        ["Is {r} wheelchair accessible?", "Does {r} have step-free access?", "Can wheelchair users ride {r}?",
         "Is {r} accessible for passengers with reduced mobility?", "Does {r} use low-floor buses?",
         "Is {r} suitable for wheelchairs?"],
        ["can i take a wheelchair on {r}", "is {r} wheelchair ok", "{r} accessible?", "does {r} have a ramp",
         "can my grandma with a walker use {r}", "is {r} step free"],
    ),
    "detour": (
        ["Is {r} on a detour?", "Is {r} currently diverted?", "Does {r} follow its normal route?",
         "Is there a diversion on {r}?", "Has {r} been rerouted?", "Is {r} running on its regular route?"],
        ["is {r} detoured", "{r} rerouted?", "is {r} going the normal way", "any detour on {r}",
         "is {r} diverted today", "is {r} taking a different route"],
    ),
}
KINDS = tuple(PHRASINGS)
HELD_OUT = 2  # the last N phrasings of each register are never trained on


def answer(route: Route, kind: str) -> str:
    r = route.name.capitalize()
    if kind == "frequency":
        return f"{r} runs every {route.every_min} minutes."
    if kind == "terminal":
        return f"{r} ends at {route.terminal}."
    if kind == "first":
        return f"The first {route.name} leaves at {route.first}."
    if kind == "last":
        return f"The last {route.name} leaves at {route.last}."
    if kind == "fare":
        return f"A single fare on {route.name} is {FARES[route.zone]} euros."
    if kind == "accessible":
        return f"Yes, {route.name} is wheelchair accessible." if route.accessible else \
            f"No, {route.name} is not wheelchair accessible."
    if kind == "detour":
        return f"Yes, {route.name} is detoured via {route.detour}." if route.detour else \
            f"No, {route.name} runs its normal route."
    raise ValueError(kind)


def _time(rng: random.Random, lo: int, hi: int) -> str:
    minutes = rng.randrange(lo * 60, hi * 60, 5)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def old_world(seed: int = 7, n_routes: int = 24) -> dict[int, Route]:
    rng = random.Random(seed)
    numbers = sorted(rng.sample(range(1, 60), n_routes))
    routes = {}
    for n in numbers:
        origin, terminal = rng.sample(PLACES, 2)
        routes[n] = Route(n, terminal, origin, rng.choice(FREQUENCIES), _time(rng, 5, 7), _time(rng, 22, 24),
                          rng.choice([1, 2, 3]), rng.random() < 0.7)
    return routes


def new_world(old: dict[int, Route], seed: int = 11, changed: int = 6, detours: int = 4,
              new_routes: int = 3) -> tuple[dict[int, Route], set[tuple[int, str]]]:
    """The world after the change, and the (route, kind) facts that changed."""
    rng = random.Random(seed)
    routes = dict(old)
    facts: set[tuple[int, str]] = set()
    numbers = sorted(old)
    for n in rng.sample(numbers, changed):  # new schedule: frequency and last departure
        r = routes[n]
        every = rng.choice([f for f in FREQUENCIES if f != r.every_min])
        routes[n] = replace(r, every_min=every, last=_time(rng, 20, 22))
        facts |= {(n, "frequency"), (n, "last")}
    for n in rng.sample(numbers, detours):
        routes[n] = replace(routes[n], detour=rng.choice(STREETS))
        facts.add((n, "detour"))
    free = [n for n in range(60, 99)]
    for n in rng.sample(free, new_routes):
        origin, terminal = rng.sample(PLACES, 2)
        routes[n] = Route(n, terminal, origin, rng.choice(FREQUENCIES), _time(rng, 5, 7), _time(rng, 22, 24),
                          rng.choice([1, 2, 3]), True)
        facts |= {(n, k) for k in KINDS}
    return routes, facts


def faq_change(old: dict[int, Route], seed: int = 13, terminals: int = 8, first: int = 6
               ) -> tuple[dict[int, Route], set[tuple[int, str]]]:
    """A change that contradicts the agency's curated FAQ (scenario ``faq-change``): routes end at
    another terminal and start at another time — evergreen facts the FAQ holds (``EVERGREEN`` in
    scenario.py), so the curated rows for them go stale."""
    rng = random.Random(seed)
    routes = dict(old)
    facts: set[tuple[int, str]] = set()
    numbers = sorted(old)
    for n in rng.sample(numbers, terminals):
        r = routes[n]
        routes[n] = replace(r, terminal=rng.choice([p for p in PLACES if p not in (r.terminal, r.origin)]))
        facts.add((n, "terminal"))
    for n in rng.sample(numbers, first):
        first_departure = routes[n].first
        while first_departure == routes[n].first:
            first_departure = _time(rng, 5, 8)
        routes[n] = replace(routes[n], first=first_departure)
        facts.add((n, "first"))
    return routes, facts


def big_change(old: dict[int, Route], seed: int = 17) -> tuple[dict[int, Route], set[tuple[int, str]]]:
    """More new facts than one round of corrections covers (scenario ``big-change``): a network
    redesign — new schedules on 16 of 24 routes, 10 detours, 8 new routes (98 facts, nearly three times
    ``schedules``)."""
    return new_world(old, seed, changed=16, detours=10, new_routes=8)


# scenario name -> (the world after the change, what the timeline says changed)
SCENARIOS = {
    "schedules": (new_world, "new schedules on 6 routes, 4 detours, 3 new routes"),
    "faq-change": (faq_change, "8 routes end at another terminal, 6 start at another time: facts the curated "
                               "FAQ holds"),
    "big-change": (big_change, "network redesign: new schedules on 16 routes, 10 detours, 8 new routes"),
}
ROUNDS = {"big-change"}
"""Scenarios the demo follows through the monitor's follow-up rounds (until back to normal), not only
to the first promotion."""


@dataclass(frozen=True)
class QA:
    question: str
    answer: str
    route: int
    kind: str
    register: str  # formal / colloquial
    held_out: bool  # phrasing never used for training

    @property
    def slice(self) -> str:
        return self.kind


def phrasings(kind: str, register: str) -> list[tuple[str, bool]]:
    formal, colloquial = PHRASINGS[kind]
    items = formal if register == "formal" else colloquial
    return [(p, i >= len(items) - HELD_OUT) for i, p in enumerate(items)]


def all_qa(routes: dict[int, Route], kinds: tuple[str, ...] = KINDS) -> list[QA]:
    """Every (route, kind, phrasing) question with its true answer."""
    out = []
    for n in sorted(routes):
        for kind in kinds:
            a = answer(routes[n], kind)
            for register in ("formal", "colloquial"):
                for template, held in phrasings(kind, register):
                    out.append(QA(template.format(r=routes[n].name), a, n, kind, register, held))
    return out


# The system prompts apps put before a rider's question. The base model stands for an
# instruction-tuned model: it has seen app system prompts like these (openings x agencies x
# closings), but never one naming a held-out agency -- the demo's own app (APP_SYSTEM_PROMPT) names
# one, so the demo measures a system prompt the base model was not trained on.
SYSTEM_OPENINGS = ["You are the {a} help desk.", "You answer riders' questions for {a}.",
                   "Transit assistant for {a}.", "You are a helpful assistant for {a} riders.",
                   "This is the {a} rider information service."]
SYSTEM_AGENCIES = ["the city transit agency", "Metro Transit", "CityBus", "the regional bus network",
                   "Harbour Lines", "the county transport authority"]
HELD_OUT_AGENCIES = ["Riverside Transit"]
SYSTEM_CLOSINGS = ["", " Answer in one sentence.", " Be brief.", " Keep answers short and factual."]
APP_SYSTEM_PROMPT = "You are the Riverside Transit help desk. Answer in one sentence."


def system_prompts(held_out: bool = False) -> list[str]:
    """App system prompts: the ones the base model is trained with, or (``held_out``) ones it never saw."""
    agencies = HELD_OUT_AGENCIES if held_out else SYSTEM_AGENCIES
    return [o.format(a=a) + c for o in SYSTEM_OPENINGS for a in agencies for c in SYSTEM_CLOSINGS]


def prompt(question: str) -> str:
    """How a question is put to the model (the base model is trained on this format)."""
    from driftloop.retrainer.prompts import render_prompt

    return render_prompt(question)


def sample_traffic(routes: dict[int, Route], rng: random.Random, n: int, colloquial_share: float,
                   focus: set[tuple[int, str]] | None = None, focus_share: float = 0.0) -> list[QA]:
    """Questions riders ask: a mix of registers, optionally concentrated on some facts."""
    by_fact: dict[tuple[int, str], dict[str, list[QA]]] = {}
    for qa in all_qa(routes):
        by_fact.setdefault((qa.route, qa.kind), {}).setdefault(qa.register, []).append(qa)
    facts = sorted(by_fact)
    focus_list = sorted(focus or ())
    out = []
    for _ in range(n):
        pool = focus_list if focus_list and rng.random() < focus_share else facts
        fact = rng.choice(pool)
        register = "colloquial" if rng.random() < colloquial_share else "formal"
        out.append(rng.choice(by_fact[fact][register]))
    return out
