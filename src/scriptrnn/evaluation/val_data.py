"""A run's own validation files (``--val-data``): train on all of DATA, validate on these.

Read once when the run starts, fingerprinted and recorded in config.json under
``corpus.val_data``, so that ``--resume`` reads the very same text again (and refuses a
changed one, as it does for DATA) and ``evaluate`` with no data scores the run on them.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass

import numpy as np

from ..errors import ScriptRNNError
from ..data.corpus import TextFormat, as_path_list
from ..paths import real_path
from .coverage import dropped_warning, encode_text
from ..data.sources import CorpusSource


@dataclass(frozen=True)
class ValData:
    source: CorpusSource  # the files, made absolute, and how they are read
    text: str

    @classmethod
    def read(cls, paths, text_format: TextFormat) -> "ValData":
        path_list = as_path_list(paths)
        if not path_list:
            raise ScriptRNNError("--val-data needs at least one file or folder")
        source = CorpusSource(paths=tuple(str(real_path(p)) for p in path_list), text_format=text_format)
        return cls(source, source.load().text)

    @classmethod
    def of_run(cls, facts: dict | None) -> "ValData | None":
        """The run's validation files (its record's ``corpus.val_data``) read again; None for a run validated on
        its corpus's end."""
        if facts is None:
            return None
        source = CorpusSource.from_dict(facts.get("source") if isinstance(facts, dict) else None)
        if source is None or not source.paths:
            raise ScriptRNNError("config.json's corpus.val_data does not say which files the run validated on")
        return cls(source, source.load().text)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8", "surrogatepass")).hexdigest()

    def facts(self) -> dict:
        """config.json's ``corpus.val_data``."""
        return {"source": self.source.to_dict(), "sha256": self.sha256, "characters": len(self.text)}

    def check_unchanged(self, facts: dict) -> None:
        if facts.get("sha256", self.sha256) != self.sha256:
            raise ScriptRNNError(f"the validation files ({self.source.describe()}) have changed since this run "
                                 "started; --resume needs the same text (start a new run with --overwrite or "
                                 "another --out)")

    def encoded(self, tokenizer) -> tuple[np.ndarray, int]:
        """The files' ids in DATA's vocabulary, and their characters (for bits per character).

        Tokens of these files that DATA's vocabulary lacks are scored as <unk> (word level);
        characters DATA never has are left out of validation, and said so.
        """
        facts = encode_text(tokenizer, self.text).coverage()
        warning = dropped_warning(facts, tokenizer.level)
        if warning:
            print(f"scriptrnn: --val-data: {warning}", file=sys.stderr)
        if len(facts["ids"]) < 2:
            raise ScriptRNNError(f"--val-data ({self.source.describe()}) has fewer than 2 tokens that DATA's "
                                 "vocabulary knows")
        return facts["ids"], facts["characters"]


def cache_fingerprint(corpus_sha256: str, val: dict | None) -> str:
    """What a run's token cache holds: DATA's text (``corpus_sha256``), and its validation files' (``val``, the
    record's ``corpus.val_data``) if it has them."""
    return corpus_sha256 + (f"+val:{val.get('sha256')}" if isinstance(val, dict) else "")
