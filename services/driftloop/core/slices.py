"""Slices: the groups of requests the loop watches and gates separately, so one group of users failing
while the average looks fine raises its own signal (the seed's bias example).

A request's slices are labels ``key=value``:

* ``lang=…`` — a guess of the language of what the user asks (:func:`guess_language`), built in;
* ``<tag>=<value>`` — the value of each request tag an operator declared (``SLICE_TAGS``: a user group,
  a region, a product tier). Tag values come from clients: only short plain values
  (:data:`VALUE`) become slices, and each service bounds how many slices it keeps per alias.

The monitor (per-slice streams) and the retrainer's gate (exact match by slice) both call
:func:`slice_labels`, so the slices an alert names are the slices the gate checks.

Why a hand-written language guess and not a detector library: the monitor must stay above 1,000
events/s on two cores and a guess runs for every prediction; script ranges plus a vote of common words
cost microseconds and give a bounded set of values (the codes below), which is what a label needs.
It tells the common Latin-script languages apart by their function words and names other scripts;
it does not try to be a general language identifier.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# Plain tag values only: a slice label is a metric label value and part of a trigger's dedupe key.
VALUE = re.compile(r"[A-Za-z0-9_.:-]{1,32}")

# Non-Latin scripts by code point range: the script names the slice (the language is not told apart).
SCRIPTS = (
    (0x0370, 0x03FF, "greek"), (0x0400, 0x052F, "cyrillic"), (0x0590, 0x05FF, "hebrew"),
    (0x0600, 0x06FF, "arabic"), (0x0900, 0x097F, "devanagari"), (0x0E00, 0x0E7F, "thai"),
    (0x3040, 0x30FF, "kana"), (0x4E00, 0x9FFF, "han"), (0xAC00, 0xD7AF, "hangul"),
)
# Function words of the Latin-script languages told apart (a question almost always has some).
WORDS = {
    "en": "the what when where which who how does do is are was can i you to of on in at for from my a an much many "
          "what's when's how's whats hi hey pls please thanks thx u ur till until has have been be it this that "
          "there any",
    "es": "el la los las qué que cuándo dónde cómo cuál es son de del en por para un una mi hay",
    "fr": "le la les quel quelle quand où comment est sont de du des en pour un une mon il y à",
    "de": "der die das wann wo wie was welche ist sind von zu im am für ein eine mein gibt",
    "pt": "o a os as qual quando onde como é são de do da em para um uma meu há",
    "it": "il lo la gli le quale quando dove come è sono di del della in per un una mio c'è",
    "nl": "de het wat wanneer waar hoe welke is zijn van naar in op voor een mijn",
}
_VOTES: dict[str, list[str]] = {}
for _lang, _words in WORDS.items():
    for _w in _words.split():
        _VOTES.setdefault(_w, []).append(_lang)
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
LANGUAGES = (*WORDS, "latin", *(name for _, _, name in SCRIPTS), "none")  # every value guess_language gives


def guess_language(text: str) -> str:
    """A code from :data:`LANGUAGES`: the Latin-script language whose function words the text has most
    of (a tie: the first in :data:`WORDS`; ``latin`` when it has none), else the script most of its
    letters are in (``none``: no letters)."""
    latin = 0
    scripts: dict[str, int] = {}
    for ch in text:
        if not ch.isalpha():
            continue
        o = ord(ch)
        if o < 0x0250:
            latin += 1
            continue
        for lo, hi, name in SCRIPTS:
            if lo <= o <= hi:
                scripts[name] = scripts.get(name, 0) + 1
                break
    if not latin and not scripts:
        return "none"
    top = max(scripts, key=scripts.get) if scripts else None
    if top is not None and scripts[top] > latin:
        return top
    counts: dict[str, int] = {}
    for w in _WORD.findall(text.lower()):
        for lang in _VOTES.get(w, ()):
            counts[lang] = counts.get(lang, 0) + 1
    if not counts:
        return "latin"
    best = max(counts.values())
    return next(lang for lang in WORDS if counts.get(lang) == best)  # a tie: the first in WORDS' order


def slice_labels(text: str, tags: Mapping[str, str], tag_keys: Iterable[str], language: bool) -> list[str]:
    """The slices of a request asking ``text`` with ``tags``: ``lang=…`` (when ``language``), then
    ``key=value`` for each declared tag key the request carries with a plain value (others: no slice)."""
    out = [f"lang={guess_language(text)}"] if language else []
    for key in tag_keys:
        value = tags.get(key, "")
        if VALUE.fullmatch(value):
            out.append(f"{key}={value}")
    return out


def slice_key(label: str) -> str:
    """The key of a label (``lang`` of ``lang=en``): slices are compared within a key."""
    return label.partition("=")[0]
