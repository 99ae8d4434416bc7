"""Training-row augmentation: synthetic variants of each training question, so robustness to the way
riders actually type (ALL-CAPS, no capitals, typos, other phrasings) is learnt, not waived.

Each training row gets ``variants`` copies with the same answer and source and a question changed by
one of three families (different families first, seeded):

* case — lower case, upper case, or title case;
* typo — a deleted, doubled or neighbouring-key letter (one or two of them);
* frame — the question wrapped in a phrase riders use ("quick question:", "..., thanks").

Only training rows are augmented: validation and test rows never are, and the gate's robustness
check perturbs the held-out test rows with its own functions (``evaluate.perturb``: swapped letters,
its own paraphrase list) — so the gate never sees a perturbation the adapter was trained on. The
variants are not written to the version's ``dataset.jsonl`` (what later runs replay).
"""

from __future__ import annotations

import random
from dataclasses import replace

from driftloop.retrainer.data import Example

# Neighbouring keys on a QWERTY keyboard (lower case), for substitution typos.
NEIGHBOURS = {
    "a": "qswz", "b": "vghn", "c": "xdfv", "d": "serfcx", "e": "wsdr", "f": "drtgvc", "g": "ftyhbv", "h": "gyujnb",
    "i": "ujko", "j": "huikmn", "k": "jiolm", "l": "kop", "m": "njk", "n": "bhjm", "o": "iklp", "p": "ol",
    "q": "wa", "r": "edft", "s": "awedxz", "t": "rfgy", "u": "yhji", "v": "cfgb", "w": "qase", "x": "zsdc",
    "y": "tghu", "z": "asx",
}
FRAMES = [("quick question: ", ""), ("hi, ", ""), ("", " thanks"), ("", " pls"), ("can u tell me ", ""),
          ("hey ", "?"), ("", " (asking for a friend)")]
FAMILIES = ("case", "typo", "frame")


def _case(q: str, rng: random.Random) -> str:
    return rng.choice([q.lower(), q.upper(), q.title()])


def _typo(q: str, rng: random.Random) -> str:
    chars = list(q)
    for _ in range(rng.choice([1, 2])):
        letters = [i for i, c in enumerate(chars) if c.isalpha()]
        if not letters:
            break
        i = rng.choice(letters)
        how = rng.choice(["delete", "double", "neighbour"])
        if how == "delete" and len(letters) > 3:
            del chars[i]
        elif how == "double":
            chars.insert(i, chars[i])
        else:
            c = rng.choice(NEIGHBOURS.get(chars[i].lower(), chars[i].lower()))
            chars[i] = c.upper() if chars[i].isupper() else c
    return "".join(chars)


def _frame(q: str, rng: random.Random) -> str:
    head, tail = rng.choice(FRAMES)
    body = q[0].lower() + q[1:] if head and q[:1].isupper() else q
    return f"{head}{body}{tail}"


def variant(question: str, family: str, rng: random.Random) -> str:
    return {"case": _case, "typo": _typo, "frame": _frame}[family](question, rng)


def augment(rows: list[Example], variants: int, seed: int = 0) -> list[Example]:
    """``rows`` followed by up to ``variants`` synthetic variants of each (fewer when a variant comes
    out the same as its question or as another variant)."""
    if variants <= 0:
        return list(rows)
    rng = random.Random(seed)
    out = list(rows)
    for ex in rows:
        seen = {ex.question}
        families = rng.sample(FAMILIES, len(FAMILIES))  # different families first
        for k in range(variants):
            q = variant(ex.question, families[k % len(families)], rng)
            if q.strip() and q not in seen:
                seen.add(q)
                out.append(replace(ex, question=q))
    return out
