"""Fine-tuning: a new run that starts from a trained model's weights (``--init-from DIR|builtin``).

The parent is read through the one loader (model.loader: safetensors, never a pickle) and
decides the network's shape and the tokenizer's kind; the new corpus decides the rest. The
vocabulary is the parent's with the new corpus's missing tokens appended, so every parent
row keeps its id and its weights:

- char level: characters the parent lacks get new rows;
- subword level: the parent's byte-pair vocabulary as it is (bytes spell any text, so nothing is
  missing; merges of the new corpus would be new rows for what old rows already spell);
- word level: words match by their string; new words get new rows, and the parent's words that
  the new corpus lacks stay (the vocabulary is the union). Dropping them would shrink the output
  layer a little, but the parent's speakers' names and style tags live in those rows, and
  "styles and speakers carry over" only means something if a prime can still name them.

New rows start where they do least harm (``_new_rows``). Speakers and styles merge, the new
corpus's first. config.json records the parent: its path, its weights' sha256 and its loss.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.tokenizer import CharTokenizer, WordTokenizer
from ..errors import ScriptRNNError
from ..paths import real_path
from ..model.directory import WEIGHTS_FILE, is_exported
from ..model.loader import load, model_directory
from ..model.network import ModelConfig, adaptive_cutoffs
from ..model.record import CorpusFacts, ParentFacts, RunRecord
from .config import REGULARISERS, SHAPE, ParentSettings

BUILTIN = "builtin"
# A new token's probability starts at most this (see _new_rows): rare, but learnable.
NEW_TOKEN_PROBABILITY = 1e-4
NEW_EMBEDDING_NOISE = 0.1  # new embedding rows: the parent's mean row plus noise of this share of its spread


@dataclass
class Parent:
    """A trained model to start from: its network, tokenizer and config.json."""

    label: str  # "builtin" or the directory as given
    directory: Path
    model: torch.nn.Module
    tokenizer: CharTokenizer | WordTokenizer
    record: RunRecord  # its config.json

    @property
    def model_config(self) -> ModelConfig:
        return self.model.config

    def settings(self) -> ParentSettings:
        """What the parent decides of the child's settings (training.config.resolve layers them): its shape
        and tokens, which a flag may not contradict (the weights would not fit), and its regularisers,
        which a flag may change (the fine-tuning defaults were measured with the parent's)."""
        inherited = {name: getattr(self.model_config, name) for name in (*SHAPE, *REGULARISERS)}
        inherited["level"] = self.tokenizer.level
        if self.tokenizer.level == "word":
            inherited["lowercase"] = self.tokenizer.lowercase
        if self.tokenizer.level == "subword":  # the parent's byte pairs are kept (merged_tokenizer)
            inherited["subword_vocab_size"] = self.record.training.get("subword_vocab_size", self.tokenizer.vocab_size)
        return ParentSettings(self.label, inherited)


def read_parent(init_from: str | Path) -> Parent:
    """The parent named by --init-from, checked: a trained run (or the built-in model), not an export."""
    label = str(init_from)
    directory = model_directory(None if label == BUILTIN else init_from)
    if is_exported(directory):
        raise ScriptRNNError(f"--init-from {label}: an exported (ONNX) model cannot be fine-tuned; give the run "
                             "directory it was exported from (its model.safetensors)")
    writer = load(directory)  # one loader: safetensors only, checked against config.json
    return Parent(label, directory, writer.model.float().train(), writer.tokenizer, writer.config)


def merged_tokenizer(parent: Parent, fitted):
    """The parent's vocabulary, then the tokens of the new corpus's own (``fitted``) it lacks, in that order."""
    old = parent.tokenizer
    if old.level == "subword":
        # Byte level: the parent's tokens already spell any text, and its merges are what its weights
        # learnt; new merges would be new rows spelling what old rows already spell. Kept as it is.
        return old
    if old.level == "char":
        return CharTokenizer(old.vocab + sorted(set(fitted.vocab) - set(old.vocab)))
    new = [w for w in fitted.vocab if w not in old.index]
    return WordTokenizer(old.vocab + new, lowercase=old.lowercase, symbols=old.symbols)


def child_model(parent: Parent, model_config: ModelConfig, seed: int) -> torch.nn.Module:
    """A network of ``model_config`` (the parent's shape, the merged vocabulary) with the parent's weights."""
    from ..model.network import RNNLanguageModel

    V_old, V = parent.model_config.vocab_size, model_config.vocab_size
    if model_config.softmax == "adaptive" and adaptive_cutoffs(V) != adaptive_cutoffs(V_old):
        # The adaptive softmax's clusters are id ranges sized from V; new words keep them only when
        # both sizes give the same cutoffs (then the new words join the rarest cluster).
        raise ScriptRNNError(
            f"--init-from {parent.label}: the new corpus adds {V - V_old:,} words to the parent's {V_old:,}, which "
            f"moves its adaptive softmax's clusters ({adaptive_cutoffs(V_old)} -> {adaptive_cutoffs(V)}); raise "
            "--min-count so fewer new words join, or train from scratch")
    torch.manual_seed(seed)
    model = RNNLanguageModel(model_config)
    noise = torch.Generator().manual_seed(seed)
    old, done = parent.model.state_dict(), set()
    with torch.no_grad():
        for name, target in model.state_dict().items():
            if target.data_ptr() in done:
                continue  # tied weights: the embedding's rows are the output layer's too
            done.add(target.data_ptr())
            source = old[name].to(target.dtype)
            if source.shape == target.shape:
                target.copy_(source)
            elif source.shape[1:] == target.shape[1:] and target.shape[0] - source.shape[0] == V - V_old:
                target[:len(source)] = source
                target[len(source):] = _new_rows(name, source, V - V_old, noise)
            else:
                raise ScriptRNNError(f"--init-from {parent.label}: weight {name} has shape {tuple(source.shape)}, "
                                     f"which the new vocabulary cannot extend to {tuple(target.shape)}")
    return model


def _new_rows(name: str, rows: torch.Tensor, count: int, noise: torch.Generator) -> torch.Tensor:
    """Rows for tokens the parent never saw.

    Embedding: the parent's mean row, plus a little noise so that new tokens start apart. Output
    weights: the mean row, so a new token's score moves with the average token's. Output bias:
    with the mean weight row w̄, Jensen's inequality bounds the new token's share of the softmax:
    sum_v exp(w_v.h + b_v) >= V exp(w̄.h + b̄), so p_new <= exp(b_new - b̄) / V at every state h.
    b_new = b̄ + log(p V) therefore starts each new token at probability at most p
    (NEW_TOKEN_PROBABILITY): rare, as a character or word one corpus has and the other lacks is,
    and not so rare that its gradient vanishes. (Adaptive softmax tails have no bias; a mean row
    there starts the new word no likelier than an average word of the rarest cluster.)
    """
    if name.endswith("bias"):
        return (rows.mean() + math.log(NEW_TOKEN_PROBABILITY * len(rows))).expand(count).clone()
    mean = rows.mean(dim=0, keepdim=True).expand(count, -1)
    if name.startswith("embedding"):
        spread = rows.std(dim=0, keepdim=True) * NEW_EMBEDDING_NOISE
        return mean + spread * torch.randn(count, rows.shape[1], generator=noise)
    return mean.clone()


def merge_corpus_facts(parent: Parent, corpus: CorpusFacts, max_speakers: int) -> None:
    """The run's speakers and styles: the new corpus's, then the parent's that do not clash."""
    old = parent.record.corpus
    known = {s.lower() for s in corpus.speakers}
    corpus.speakers = (corpus.speakers + [s for s in old.speakers if s.lower() not in known])[:max_speakers]
    names, tags = {s.name for s in corpus.styles}, {s.tag for s in corpus.styles}
    # A parent style whose name or tag the new corpus reuses is now the new corpus's: its text retrained it.
    corpus.styles = corpus.styles + [s for s in old.styles if s.name not in names and s.tag not in tags]


def parent_record(parent: Parent) -> ParentFacts:
    """What the run's record says about the parent: where it was, which weights, how good."""
    weights = parent.directory / WEIGHTS_FILE
    metrics = parent.record.metrics
    return ParentFacts(parent.label, str(real_path(parent.directory)), hashlib.sha256(weights.read_bytes()).hexdigest(),
                       metrics.loss if metrics else None, parent.record.corpus.name, parent.model_config.vocab_size)
