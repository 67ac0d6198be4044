"""A stand-in for ``nltk``, whose punkt tokenizer data is a download.

speech-to-speech uses two things of it: ``s2s_pipeline`` checks at import that two tokenizer
resources are present (downloading them otherwise), answered here "present"; and the LLM handlers
split streamed text into sentences for the TTS with ``sent_tokenize``, here a plain split after
``.``, ``!`` or ``?`` followed by white space, which is what punkt does on the stand-in model's
short, plain replies.
"""

from __future__ import annotations

import re
import types

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sent_tokenize(text: str, language: str = "english") -> list[str]:
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def _find(resource: str) -> str:
    return resource


def download(*args: object, **kwargs: object) -> bool:
    return True


data = types.SimpleNamespace(find=_find)
