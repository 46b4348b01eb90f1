"""Which learned stage reads an article: English, Ukrainian/Russian, or neither.

Each learned stage was trained on one kind of text and means nothing on another (the
English stage's word features, the Cyrillic stage's stems), so an article goes to a stage
only when its language is that stage's; any other language keeps the rule decision. A
declared language decides; feeds often declare none, so the text itself is read then.
"""

from __future__ import annotations

import re

from .features import MODEL_BODY_CHARS, WORD
from .rules import RuleAnalysis

_CYRILLIC = re.compile("[\u0400-\u04ff]")
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
_EN_FUNCTION_WORDS = frozenset(
    {
        "the",
        "of",
        "and",
        "to",
        "for",
        "with",
        "that",
        "is",
        "was",
        "are",
        "were",
        "has",
        "have",
        "had",
        "from",
        "by",
        "its",
        "it",
        "will",
        "after",
        "over",
        "says",
        "said",
        "this",
        "than",
        "which",
        "who",
        "would",
        "could",
        "their",
        "they",
        "he",
        "she",
        "but",
        "not",
        "been",
    }
)
_OTHER_FUNCTION_WORDS = frozenset(
    {
        "de",
        "la",
        "le",
        "les",
        "des",
        "du",
        "une",
        "un",
        "et",
        "est",
        "sur",
        "pour",
        "dans",
        "au",
        "aux",
        "der",
        "die",
        "das",
        "und",
        "ein",
        "eine",
        "einen",
        "mit",
        "von",
        "für",
        "ist",
        "nicht",
        "dem",
        "den",
        "zu",
        "auf",
    }
)


def _lead_text(analysis: RuleAnalysis) -> str:
    """Title and lead: what the learned stages read, and what decides their language."""
    return analysis.title + " " + analysis.body[:MODEL_BODY_CHARS]


def _language_code(language: str) -> str:
    """``"en-GB"``, ``"uk_UA"``, ``" RU "`` -> ``"en"``, ``"uk"``, ``"ru"``."""
    return language.strip().lower().replace("_", "-").split("-")[0]


def _cyrillic_share(text: str) -> float:
    letters = len(_LETTER.findall(text))
    return len(_CYRILLIC.findall(text)) / letters if letters else 0.0


def english_applies(language: str | None, analysis: RuleAnalysis) -> bool:
    """The English stage's word features are English: other languages keep the rule decision.

    An explicit ``language`` decides; without one, text that is mostly Cyrillic or whose
    function words are mostly French/German is treated as non-English. Empty text keeps
    the rule score (0).
    """
    text = _lead_text(analysis)
    if not text.strip():
        return False  # nothing to read: the rule score (0) stands
    if language:
        return _language_code(language) == "en"
    if _cyrillic_share(text) > 0.3:
        return False
    words = WORD.findall(text)
    english = sum(1 for w in words if w in _EN_FUNCTION_WORDS)
    other = sum(1 for w in words if w in _OTHER_FUNCTION_WORDS)
    return english >= other


_CYRILLIC_LANGUAGES = frozenset({"uk", "ru"})
"""Languages the Cyrillic stage was trained and measured on (``ml_dev`` / ``ml_test``)."""


def cyrillic_applies(language: str | None, analysis: RuleAnalysis) -> bool:
    """Ukrainian and Russian text goes to the Cyrillic learned stage.

    An explicit ``language`` decides (other Cyrillic languages such as Bulgarian keep the
    rules: the stage has never seen them); without one, text whose letters are mostly
    Cyrillic is taken to be Ukrainian or Russian.
    """
    text = _lead_text(analysis)
    if not text.strip():
        return False
    if language:
        return _language_code(language) in _CYRILLIC_LANGUAGES
    return _cyrillic_share(text) > 0.5
