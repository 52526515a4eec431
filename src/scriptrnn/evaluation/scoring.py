"""Held-out loss: mean cross-entropy over every position of a token array, and a model scored on a corpus."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..data.batching import split_ids
from .coverage import EncodedText, bits_per_char, case_note, dropped_warning, encode_text
from ..data.corpus import as_path_list
from ..data.sources import CorpusRequest, load_corpus
from ..data.subword import held_out_start
from .held_out import RunText
from ..errors import ScriptRNNError
from ..generate.sampling import SamplingConfig
from .text_report import TextReport, text_report
from ..model.network import RNNLanguageModel


def loss_report(loss: float, level: str, *, tokens: int | None = None, characters: int | None = None) -> dict:
    """Held-out loss with the figures people quote: perplexity, and bits per character of the text.

    Bits per character put word and char models on one scale: the loss per token times the
    text's ``tokens``, over its ``characters``, in bits. Without the counts (a run from before
    they were kept) only char level has them: a token is a character.
    """
    report = {"loss": loss, "perplexity": math.exp(min(loss, 700.0))}
    if tokens and characters:
        report["bits_per_char"] = bits_per_char(loss, tokens, characters)
    elif level == "char":
        report["bits_per_char"] = loss / math.log(2)
    return report


def evaluate_loss(
    model: RNNLanguageModel,
    ids: np.ndarray,
    *,
    streams: int = 32,
    max_tokens: int | None = None,
    device: torch.device | str = "cpu",
) -> tuple[float, int]:
    """Mean cross-entropy (nats) over all positions of ``ids``, and how many were scored.

    The array is read as ``streams`` contiguous streams with the state carried
    along, so only each stream's first token lacks context; windows are only a
    memory bound, they do not change the result.
    """
    total, count = loss_sums(model, ids, streams=streams, max_tokens=max_tokens, device=device)
    return total / max(1, count), count


@torch.no_grad()
def loss_sums(
    model: RNNLanguageModel,
    ids: np.ndarray,
    *,
    streams: int = 32,
    max_tokens: int | None = None,
    device: torch.device | str = "cpu",
    part: tuple[int, int] = (0, 1),
) -> tuple[float, int]:
    """Summed cross-entropy (nats) and positions scored, for ``evaluate_loss``.

    ``part`` (index, count) scores only that share of the streams, so that the
    processes of a multi-process run can split the work and add up their sums into
    exactly the figure one process would get.
    """
    if max_tokens is not None:
        ids = ids[: max_tokens + 1]
    streams = max(1, min(streams, (len(ids) - 1) // 2))
    n = (len(ids) - 1) // streams
    mine = np.array_split(np.arange(streams, dtype=np.int64), part[1])[part[0]]  # (S',) of the S streams
    base = mine[:, None] * n  # (S', 1)
    # Keep one window's logits (S, T, V) to about 64 MB of floats.
    window = max(1, min(512, 16_000_000 // (streams * model.config.vocab_size)))
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    for start in range(0, n if len(mine) else 0, window):
        idx = base + np.arange(start, min(start + window, n))[None, :]  # (S', T)
        x = torch.from_numpy(np.asarray(ids[idx], dtype=np.int64)).to(device)
        y = torch.from_numpy(np.asarray(ids[idx + 1], dtype=np.int64)).to(device)
        loss, state = model(x, state, targets=y)  # mean over the window's S*T positions
        total += loss.item() * y.numel()
        count += y.numel()
    model.train(was_training)
    return total, count


def evaluate_model(script_model, request: CorpusRequest, *, held_out: bool = True, default_fraction: float) -> dict:
    """``scriptrnn.evaluate``: a loaded model (a ``ScriptModel``) scored on the text ``request`` names.

    No data and no corpus: the corpus the run trained on (each style's own held-out end for a
    styled run; the whole of its --val-data files for a run given them). ``held_out``: only the
    last ``val_fraction`` of the text, which a run never trains on (``default_fraction`` where
    its config.json does not say: see ``RunText.of_run``).
    """
    paths = as_path_list(request.data)
    run = RunText.of_run(script_model.config, default_fraction)
    if not paths and request.corpus is None and run.source is not None:
        if run.val is not None:  # held out: those files; --all: the corpus, all of which it trained on
            return _score(script_model, encode_text(script_model.tokenizer,
                                                    run.val.text if held_out else run.corpus.text))
        if held_out and (split := run.styled_split()) is not None:
            return _evaluate_styles(script_model, split)
        text = run.corpus.text
    else:
        text = load_corpus(paths or None, corpus=request.corpus or CorpusRequest.corpus, genres=list(request.genres) or None,
                           text_format=request.text_format).text
    if held_out and script_model.level == "subword":  # held out in characters, encoded apart, as training did
        return _score(script_model, encode_text(script_model.tokenizer, text[held_out_start(len(text), run.fraction):]))
    encoded = encode_text(script_model.tokenizer, text)
    return _score(script_model, encoded.tail(run.fraction) if held_out else encoded)


def _evaluate_styles(script_model, split) -> dict:
    """The held-out ends of all styles together (what training validated on), then each alone."""
    tokenizer = script_model.tokenizer
    report = _score(script_model, encode_text(tokenizer, split.val))
    report["styles"] = {name: _score(script_model, encode_text(tokenizer, text))
                        for name, text in split.val_by_style.items()}
    return report


def _score(script_model, encoded: EncodedText) -> dict:
    """Every token scored: unknown ones as <unk>, or, with no <unk> to stand for them, counted and warned of."""
    facts = encoded.coverage()
    ids = facts.pop("ids")
    if len(ids) < 2:
        raise ScriptRNNError("the evaluation text has fewer than 2 known tokens")
    if isinstance(script_model.model, RNNLanguageModel):
        loss, tokens = evaluate_loss(script_model.model, ids, device=script_model.device)
    else:  # an exported model
        from ..model.onnx import evaluate_loss as evaluate_exported

        loss, tokens = evaluate_exported(script_model.model, ids)
    report = {**loss_report(loss, script_model.level, tokens=len(ids), characters=facts["characters"]),
              "tokens": tokens, "characters": facts["characters"], "out_of_vocabulary": facts["out_of_vocabulary"],
              "out_of_vocabulary_share": facts["out_of_vocabulary_share"], "dropped": facts["dropped"],
              **case_note(script_model.tokenizer)}
    warning = dropped_warning(report, script_model.level)
    return {**report, "warning": warning} if warning else report


# --samples' default length: about 4,000 characters at every level (subword: ~3.5 characters a token, not measured)
SAMPLE_TOKENS = {"char": 4_000, "word": 800, "subword": 1_200}


def sample_report(script_model, samples: int = 4, *, max_new_tokens: int | None = None,
                  temperature: float = SamplingConfig.temperature, seed: int = 0,
                  default_fraction: float) -> tuple[TextReport, list[str]]:
    """Write ``samples`` texts and score them against the run's own training and held-out text.

    Returns the report and the texts. The texts start from nothing (no prime) and end on a whole line
    (a text with none is cut at a word end instead).
    """
    if samples < 1:
        raise ScriptRNNError(f"--samples must be at least 1, got {samples}")
    train_text, heldout_text = run_texts(script_model, default_fraction)
    # Whole lines only: a last line cut short would make the lines look shorter than the model writes them.
    config = SamplingConfig(max_new_tokens=max_new_tokens or SAMPLE_TOKENS[script_model.level],
                            temperature=temperature, seed=seed, num_return_sequences=samples,
                            whole_lines=True).validate()
    texts = script_model.generate("", config)
    return text_report(texts, train_text, heldout_text, script_model.level), texts


def run_texts(script_model, default_fraction: float) -> tuple[str, str]:
    """The run's training text and held-out end, as the model spells them (word level: lower case, <unk>)."""
    run = RunText.of_run(script_model.config, default_fraction)
    if run.source is None:
        raise ScriptRNNError("--samples compares the text with the run's own corpus, and this model's config.json "
                             "does not say which corpus it read")
    corpus, tokenizer = run.corpus, script_model.tokenizer
    split = run.styled_split()
    if run.val is not None:  # trained on all of the corpus, validated on its own files
        parts = [tokenizer.encode(corpus.text, strict=False), tokenizer.encode(run.val.text, strict=False)]
        if tokenizer.level == "char":
            return corpus.text, tokenizer.decode(parts[1])
    elif tokenizer.level == "subword" and split is None:  # held out in characters, as training cut it
        cut = held_out_start(len(corpus.text), run.fraction)
        return corpus.text[:cut], corpus.text[cut:]
    elif split is not None:
        parts = [tokenizer.encode(split.train, strict=False), tokenizer.encode(split.val, strict=False)]
    else:
        parts = split_ids(tokenizer.encode(corpus.text, strict=False), run.fraction)
        if tokenizer.level == "char" and sum(map(len, parts)) == len(corpus.text):
            return corpus.text[:len(parts[0])], corpus.text[len(parts[0]):]  # every character known: no decoding
    return tokenizer.decode(parts[0]), tokenizer.decode(parts[1])
