"""The speakers a model knows, and writing with them: ``--speaker`` and ``--cast``.

A run records its corpus's speakers (most speeches first) in config.json at train time;
names given by the user are matched against that list without regard to case and spacing,
and anything else is refused with the names the model does know.
"""

from __future__ import annotations

from typing import Iterable

from .constraints import CastMask, TurnTaking
from ..errors import ScriptRNNError

SHOWN_IN_ERRORS = 20


def _key(name: str) -> str:
    return " ".join(name.split()).lower()


def resolve_speaker(name: str, known: list[str]) -> str:
    """The model's own spelling of ``name`` ('Jerry' -> 'jerry', 'first witch' -> 'FIRST WITCH')."""
    if not known:
        raise ScriptRNNError("this model knows no speakers (its corpus has no 'NAME: line' lines), so --speaker "
                             "and --cast have no one to choose")
    by_key = {_key(s): s for s in known}
    if _key(name) not in by_key:
        shown = ", ".join(known[:SHOWN_IN_ERRORS])
        more = f", ... ({len(known)} in all; scriptrnn info lists them)" if len(known) > SHOWN_IN_ERRORS else ""
        raise ScriptRNNError(f"unknown speaker {name.strip()!r}; this model knows: {shown}{more}")
    return by_key[_key(name)]


def resolve_cast(cast: str | Iterable[str], known: list[str]) -> list[str]:
    """'jerry,george' or ['jerry', 'george'] -> the model's spellings, each once."""
    names = cast.split(",") if isinstance(cast, str) else list(cast)
    names = [n for n in names if n.strip()]
    if not names:
        raise ScriptRNNError("--cast needs at least one speaker, e.g. --cast jerry,george,elaine")
    return list(dict.fromkeys(resolve_speaker(n, known) for n in names))


def speaker_prime(name: str, prime: str = "") -> str:
    """The start of ``name``'s line; a prime then becomes the first words they say."""
    return f"{name}: {prime.strip()}" if prime.strip() else f"{name}:"


def cast_mask(tokenizer, names: list[str]) -> CastMask:
    """A CastMask that keeps line starts to the cues of ``names`` (as this tokenizer spells them)."""
    newline = tokenizer.token_id("\n")
    if newline is None:
        raise ScriptRNNError("this model has no line breaks in its vocabulary, so it has no lines to cast")
    cues = [[int(i) for i in tokenizer.encode(f"{name}:", strict=False)] for name in names]
    direction = tokenizer.token_id("[")
    return CastMask(cues, newline, [direction] if direction is not None else [], tokenizer.vocab_size)


def turn_taking(tokenizer, names: list[str]) -> TurnTaking | None:
    """The TurnTaking rule for ``names`` (as this tokenizer spells them), or None without line breaks."""
    newline = tokenizer.token_id("\n")
    if newline is None or not names:
        return None
    reserved = set(tokenizer.reserved_ids)

    def spelled(text: str) -> list[int]:  # a name the vocabulary cannot spell (<unk>) is left out
        ids = [int(i) for i in tokenizer.encode(text, strict=False)]
        return [] if reserved.intersection(ids) else ids

    spellings = [spelled(name) for name in names]
    kept = [i for i, ids in enumerate(spellings) if ids]
    cue_ends = [t for t in (tokenizer.token_id(":"), tokenizer.token_id("(")) if t is not None]
    return TurnTaking([spellings[i] for i in kept], [spelled(f"(to {names[i]}") for i in kept], newline,
                      cue_ends, tokenizer.vocab_size)
