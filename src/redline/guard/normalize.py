"""Text variants a detector searches so that obfuscation does not hide a match.

Attackers hide trigger words with fullwidth or mathematical letters, Cyrillic and Greek
look-alikes, zero-width characters, leetspeak ("n3rv3 4g3nt"), letter spacing ("b o m b",
"b.o.m.b"), and encodings (base64, rot13). ``variants(text)`` returns the original plus the
decoded forms, each able to map a match span back to the original text, so a redaction hits
the characters the user actually sent (for a decoded segment: the whole encoded segment).

Everything is bounded, because the input is hostile: the text read, the number of variants,
the number of decoded segments and their total size are capped by the constants below.
Plain ASCII text, the common case, takes a fast path with no per-character Python loop.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

#: Characters of the input that are normalised; the rest is not searched in decoded forms.
MAX_NORMALIZE_CHARS = 65_536
#: Most variants returned for one text (the original counts).
MAX_VARIANTS = 12
#: Most base64 segments decoded from one text.
MAX_DECODED_SEGMENTS = 8
#: Shortest run of base64 characters treated as an encoded segment (shorter runs are words).
MIN_BASE64_CHARS = 16
#: Total decoded bytes kept across all segments of one text.
MAX_DECODED_BYTES = 16_384
#: Share of printable characters a decoded segment needs to count as text.
MIN_PRINTABLE_SHARE = 0.9
#: Longest word leetspeak is decoded in; longer runs are identifiers or encodings.
MAX_LEET_WORD = 24
#: Common English words that reveal rot13: enough of them after rotating means it was rot13.
MIN_ROT13_WORDS = 2
#: Texts (normalisation results) remembered per process: rules and semantic detectors
#: inspect the same item, so the second asks for variants the first already computed.
CACHE_SIZE = 128
#: Only texts up to this length are remembered, so the cache's memory stays bounded (offset
#: maps cost ~36 bytes a character per variant: at most ~75 MB for hostile non-ASCII texts).
CACHE_MAX_CHARS = 4096

#: Look-alike letters NFKC leaves alone: Cyrillic, Greek, Latin small capitals and others.
CONFUSABLES: dict[str, str] = {
    # Cyrillic lower case
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
    "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i",
    "ј": "j", "ԁ": "d", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ɡ": "g", "ь": "b",
    # Cyrillic upper case
    "А": "a", "В": "b", "Е": "e", "К": "k", "М": "m", "Н": "h", "О": "o", "Р": "p",
    "С": "c", "Т": "t", "Х": "x", "У": "y", "Ѕ": "s", "І": "i", "Ј": "j", "Ԁ": "d",
    # Greek lower case
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v",
    "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ς": "s",
    # Greek upper case
    "Α": "a", "Β": "b", "Ε": "e", "Ζ": "z", "Η": "h", "Ι": "i", "Κ": "k", "Μ": "m",
    "Ν": "n", "Ο": "o", "Ρ": "p", "Τ": "t", "Υ": "y", "Χ": "x",
    # Latin look-alikes and small capitals
    "ɑ": "a", "ı": "i", "ȷ": "j", "ʟ": "l", "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d",
    "ᴇ": "e", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j", "ᴋ": "k", "ᴍ": "m", "ɴ": "n",
    "ᴏ": "o", "ᴘ": "p", "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w",
    "ʏ": "y", "ᴢ": "z", "ℓ": "l", "ø": "o", "đ": "d", "ħ": "h", "ł": "l",
}

#: Leetspeak digits and symbols, decoded only inside words that also contain letters.
LEET = str.maketrans({
    "0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
    "@": "a", "$": "s", "!": "i", "|": "l", "+": "t",
})
#: A word for leetspeak: letters, digits and the symbols above (a simple run, so matching is
#: linear; the mix of letters and symbols is checked in Python).
_LEET_WORD = re.compile(r"[a-z0-9@$!|+]+")
_LEET_CHARS = frozenset("0123456789@$!|+")
#: Three or more single characters each followed by 1–3 separators: "b o m b", "b.o.m.b".
_SPACED = re.compile(r"(?<![a-z0-9])(?:[a-z0-9][\s.\-_*/|+,·]{1,3}){2,}[a-z0-9](?![a-z0-9])")
_SPACED_SEPARATORS = re.compile(r"[\s.\-_*/|+,·]{1,3}")
_BASE64 = re.compile(rf"[A-Za-z0-9+/_-]{{{MIN_BASE64_CHARS},}}={{0,2}}")
_WORD = re.compile(r"[a-z]{2,}")
_ROT13_MARKER = re.compile(r"rot[\s_-]?13|caesar", re.IGNORECASE)
#: Frequent words whose rot13 forms are not words, so hits after rotating mean rot13.
_COMMON_WORDS = frozenset((
    "the", "and", "to", "of", "how", "in", "is", "it", "for", "you", "on", "with", "that",
    "this", "make", "do", "can", "what", "are", "be", "at", "as", "or", "from", "by", "your",
    "me", "my", "an", "tell", "write", "give", "explain", "step", "steps", "build", "create",
    "get", "use",
))
_ASCII_CLEAN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TAG_BASE = 0xE0000
_TAG_FIRST, _TAG_LAST = 0xE0020, 0xE007E


@dataclass(frozen=True)
class Variant:
    """One form of the text, with how its characters map back to the original.

    ``offsets[i]`` is the original index of character ``i`` of ``text`` (None: identity);
    ``segment`` is set for decoded segments, whose every match maps to the encoded span.
    """

    kind: str
    text: str
    offsets: tuple[int, ...] | None = None
    segment: tuple[int, int] | None = None

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that produced ``text[start:end]``."""
        if self.segment is not None:
            return self.segment
        if self.offsets is None:
            return start, end
        if end <= start:
            at = self.offsets[start] if start < len(self.offsets) else self.offsets[-1] + 1
            return at, at
        return self.offsets[start], self.offsets[end - 1] + 1


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    """One character in canonical form: NFKC, look-alikes mapped, marks and invisibles gone."""
    cp = ord(ch)
    if _TAG_FIRST <= cp <= _TAG_LAST:  # "ASCII smuggling" through Unicode tag characters
        return chr(cp - _TAG_BASE).lower()
    out: list[str] = []
    for c in unicodedata.normalize("NFKC", ch):
        c = CONFUSABLES.get(c, c)
        for d in unicodedata.normalize("NFKD", c):
            category = unicodedata.category(d)
            if category in ("Mn", "Me", "Cf", "Co", "Cs") or (
                category == "Cc" and d not in "\t\n\r"
            ):
                continue
            out.append(CONFUSABLES.get(d, d))
    return "".join(out).lower()


def fold(text: str) -> Variant:
    """Lower case, NFKC, confusables mapped, zero-width/control characters and marks removed."""
    if text.isascii():
        if _ASCII_CLEAN.search(text) is None:
            return Variant("folded", text.lower())
        kept = [i for i, ch in enumerate(text) if not _ASCII_CLEAN.match(ch)]
        return Variant("folded", "".join(text[i] for i in kept).lower(), tuple(kept))
    pieces: list[str] = []
    offsets: list[int] = []
    for i, ch in enumerate(text):
        folded = ch.lower() if ch.isascii() else _fold_char(ch)
        pieces.append(folded)
        offsets.extend([i] * len(folded))
    return Variant("folded", "".join(pieces), tuple(offsets))


def _compose(
    outer: tuple[int, ...] | None, inner: tuple[int, ...] | None
) -> tuple[int, ...] | None:
    """Offsets of a variant built from another: inner maps into outer, outer into the original."""
    if inner is None:
        return outer
    if outer is None:
        return inner
    return tuple(outer[i] for i in inner)


def collapse_spacing(text: str) -> tuple[str, tuple[int, ...]] | None:
    """Join letter-spaced runs ("b o m b" → "bomb"); None when there is none.

    A separator with two or more whitespace characters is kept as one space, so spaced-out
    phrases ("n e r v e   a g e n t") stay two words.
    """
    if _SPACED.search(text) is None:
        return None
    pieces: list[str] = []
    offsets: list[int] = []
    last = 0
    for match in _SPACED.finditer(text):
        pieces.append(text[last : match.start()])
        offsets.extend(range(last, match.start()))
        position = match.start()
        for sep in _SPACED_SEPARATORS.finditer(match.group()):
            start, end = match.start() + sep.start(), match.start() + sep.end()
            pieces.append(text[position:start])
            offsets.extend(range(position, start))
            if sum(c.isspace() for c in sep.group()) >= 2:
                pieces.append(" ")
                offsets.append(start)
            position = end
        pieces.append(text[position : match.end()])
        offsets.extend(range(position, match.end()))
        last = match.end()
    pieces.append(text[last:])
    offsets.extend(range(last, len(text)))
    return "".join(pieces), tuple(offsets)


def decode_leet(text: str) -> str:
    """Leetspeak decoded inside mixed letter/digit words ("k1ll" → "kill"); same length."""


    def decode(match: re.Match[str]) -> str:
        word = match.group()
        mixed = (
            len(word) <= MAX_LEET_WORD
            and not _LEET_CHARS.isdisjoint(word)
            and any(c.isalpha() for c in word)
        )
        return word.translate(LEET) if mixed else word

    return _LEET_WORD.sub(decode, text)


def _rot13_likely(text: str) -> bool:
    if _ROT13_MARKER.search(text):
        return True
    rotated = codecs.encode(text, "rot13")
    hits = sum(1 for w in _WORD.findall(rotated) if w in _COMMON_WORDS)
    return hits >= MIN_ROT13_WORDS and hits > sum(
        1 for w in _WORD.findall(text) if w in _COMMON_WORDS
    )


def _decode_base64(segment: str) -> str | None:
    """The text a base64 (or URL-safe base64) segment encodes, or None if it is not text."""
    body = segment.rstrip("=")
    padded = body + "=" * (-len(body) % 4)
    try:
        raw = (
            base64.urlsafe_b64decode(padded)
            if "-" in body or "_" in body
            else base64.b64decode(padded, validate=True)
        )
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    if not decoded:
        return None
    printable = sum(1 for c in decoded if c.isprintable() or c in "\t\n\r")
    return decoded if printable / len(decoded) >= MIN_PRINTABLE_SHARE else None


def _base64_variants(text: str) -> list[Variant]:
    found: list[Variant] = []
    budget = MAX_DECODED_BYTES
    for match in _BASE64.finditer(text):
        if len(found) >= MAX_DECODED_SEGMENTS or budget <= 0:
            break
        segment = match.group()
        if segment.isalpha() and (segment.islower() or segment.isupper()):
            continue  # one long word, not an encoding
        encoded = segment[: budget * 4 // 3 + 4]
        decoded = _decode_base64(encoded[: len(encoded) - len(encoded) % 4] or encoded)
        if decoded is None:
            continue
        budget -= len(decoded)
        found.append(
            Variant("base64", fold(decoded).text, segment=(match.start(), match.end()))
        )
    return found


def _uncached_variants(text: str) -> tuple[Variant, ...]:
    text = text[:MAX_NORMALIZE_CHARS]
    out: list[Variant] = [Variant("original", text)]
    seen = {text.lower()}

    def add(variant: Variant) -> None:
        if len(out) < MAX_VARIANTS and variant.text not in seen:
            seen.add(variant.text)
            out.append(variant)

    folded = fold(text)
    add(folded)
    collapsed = collapse_spacing(folded.text)
    base_text, base_offsets = folded.text, folded.offsets
    if collapsed is not None:
        base_text, base_offsets = collapsed[0], _compose(folded.offsets, collapsed[1])
        add(Variant("spacing", base_text, base_offsets))
    leet = decode_leet(base_text)
    add(Variant("leet", leet, base_offsets))
    if _rot13_likely(folded.text):
        add(Variant("rot13", codecs.encode(folded.text, "rot13"), folded.offsets))
    for variant in _base64_variants(text):
        add(variant)
    return tuple(out)


_cached_variants = lru_cache(maxsize=CACHE_SIZE)(_uncached_variants)


def variants(text: str) -> tuple[Variant, ...]:
    """The original text first, then its distinct decoded forms (at most ``MAX_VARIANTS``)."""
    if len(text) <= CACHE_MAX_CHARS:
        return _cached_variants(text)
    return _uncached_variants(text)
