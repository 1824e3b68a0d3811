"""Text normalisation shared by the guards, the attribute extractor and the agents: markup-free
plain text, word tokens, and a crude stemmer so "stripes", "striped" and "stripe" ground one another."""
from __future__ import annotations

import html
import re

from curation.refinement.lexicon import pairs

_TOKEN = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")  # letters and digits of any script
_TAG = re.compile(r"<[^>]*>")
_BLOCK_TAG = re.compile(r"(?i)<\s*/?\s*(?:br|p|li|ul|ol|div|tr|h[1-6])\b[^>]*>")


def clean_text(value: object, keep_lines: bool = False) -> str:
    """Metadata value -> plain text: NaN/None -> "", HTML tags and entities removed, spaces collapsed.

    With keep_lines, block tags (<br>, <li>, <p>, ...) and " | " separators become line breaks, so
    sentence splitting later sees the boundaries the HTML had.
    """
    if value is None or (isinstance(value, float) and value != value):
        return ""
    text = str(value)
    if keep_lines:
        text = _BLOCK_TAG.sub("\n", text).replace(" | ", "\n")
    text = html.unescape(_TAG.sub(" ", text))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return ("\n" if keep_lines else " ").join(line for line in lines if line)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def stem(word: str) -> str:
    """Crude suffix folding so "stripes", "striped" and "stripe" ground one another."""
    word = pairs("synonyms").get(word, word)
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and not word.endswith("ss") and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]  # "dott" -> "dot"
    return word.rstrip("e") if len(word) > 3 else word


def grounding_index(texts: list[str]) -> frozenset[str]:
    """The words (and their stems) a query about this product may use."""
    toks = {t for text in texts for t in tokens(text)}
    parts = {p for t in toks for p in t.split("-")}
    return frozenset(toks | parts | {stem(t) for t in toks | parts})
