"""A run's own text, found again from its config.json: what it trained on and what it held out.

``RunText.of_run`` is the one reader of where that text is (the record's ``corpus.source``,
``corpus.val_data``, ``training.val_fraction``), for scoring a run on its own held-out text (``scriptrnn.evaluate``
with no data) and for comparing its samples with it (``--samples``). A run holds out one of:

- its ``--val-data`` files, all of them, having trained on all of its corpus;
- the last ``fraction`` of each style's text (a styled corpus: ``StyledCorpus.split``);
- the last ``fraction`` of its corpus's tokens (``split_ids``, as training splits them).

The corpus and the validation files are read on first use and once, so a caller that needs
neither reads neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ..data.sources import CorpusSource
from ..data.styles import StyledCorpus, StyledSplit
from ..model.record import RunRecord
from .val_data import ValData


@dataclass(frozen=True)
class RunText:
    source: CorpusSource | None  # the corpus it trained on; None where config.json does not say
    val_facts: dict | None  # the --val-data files the run recorded (config.json's corpus.val_data), if any
    fraction: float  # the end held out when no --val-data files were given (training.val_fraction)

    @classmethod
    def of_run(cls, record: RunRecord, default_fraction: float) -> "RunText":
        """``record``: the run's config.json, read (model/record.py). ``default_fraction``: what to assume where
        it does not say (TrainConfig's default, which the caller passes down: this stage sits below training
        and does not import it)."""
        fraction = record.val_fraction
        return cls(CorpusSource.from_dict(record.corpus.source), record.corpus.val_data,
                   default_fraction if fraction is None else fraction)

    @cached_property
    def corpus(self):
        """The corpus read again (a ``Corpus`` or a ``StyledCorpus``)."""
        return self.source.load()

    @cached_property
    def val(self) -> ValData | None:
        """Its --val-data files read again; None for a run validated on its corpus's end."""
        return ValData.of_run(self.val_facts)

    def styled_split(self) -> StyledSplit | None:
        """Each style's trained-on start and held-out end, for a run on a styled corpus without --val-data."""
        if self.val is None and isinstance(self.corpus, StyledCorpus):
            return self.corpus.split(self.fraction)
        return None
