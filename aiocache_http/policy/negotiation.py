"""The content negotiation fields (RFC 9110 §12.5: Accept, Accept-Charset,
Accept-Encoding, Accept-Language) as Vary reads them with ``cache_control`` (RFC 9111 §4.1).

§4.1 lets two requests' selecting fields match when one becomes the other by
"normalizing both header field values in a way that is known to have identical
semantics, according to the header field's specification (e.g., reordering field
values when order is not significant; case-normalization, where values are defined to
be case-insensitive)". In these four fields a preference is its weight (RFC 9110
§12.4.2), a missing weight is 1, and the order of the elements carries no meaning (for
Accept-Language, §12.5.4: it "cannot be relied upon"); tokens are case-insensitive.

So ``de, en`` and ``EN,de;q=1.0`` read the same. A value this module cannot read (a
quoted string, a bad weight) is compared as written, never guessed at.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .directives import split_list

NEGOTIATION_FIELDS = frozenset({"accept", "accept-charset", "accept-encoding", "accept-language"})

_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")  # RFC 9110 §12.4.2
_FULL = 1000  # weights in thousandths: exact, and q=1 == q=1.000


@lru_cache(maxsize=256)  # bounded: values come from requests
def elements(value: str) -> tuple[tuple[int, str], ...] | None:
    """The field's elements as (weight in thousandths, the element without its weight,
    lower-cased), highest weight first, equal weights in the order sent (origins such as
    Django and Express's negotiator break ties by order: ignoring it could serve another
    language's variant); None when the value cannot be read."""
    found: list[tuple[int, str]] = []
    for element in split_list(value):
        if '"' in element:  # a quoted parameter value: its case and ";" may matter
            return None
        token, *params = (part.strip() for part in element.split(";"))
        if not token:
            return None
        weight = _FULL
        kept = [token.lower()]
        for param in params:
            name, sep, raw = param.partition("=")
            name, raw = name.strip().lower(), raw.strip()
            if not sep or not name:
                return None
            if name == "q":
                if not _QVALUE.fullmatch(raw):
                    return None
                weight = round(float(raw) * _FULL)
            else:
                kept.append(f"{name}={raw}")
        found.append((weight, ";".join(kept)))
    return tuple(sorted(found, key=lambda e: -e[0]))  # stable: ties keep their order


@lru_cache(maxsize=256)  # bounded: values come from requests
def canonical(value: str) -> str | None:
    """One spelling for every way of writing the same preferences (None: unreadable)."""
    read = elements(value)
    if read is None:
        return None
    return ",".join(e if w == _FULL else f"{e};q={w / _FULL:g}" for w, e in read)


def preferred(value: str) -> str | None:
    """The one element the request prefers to every other (a strictly highest weight
    above 0, not a wildcard); None when there is none."""
    read = elements(value)
    if not read:
        return None
    weight, top = read[0]
    if weight == 0 or "*" in top or (len(read) > 1 and read[1][0] == weight):
        return None
    return top


__all__ = ["NEGOTIATION_FIELDS", "canonical", "elements", "preferred"]
