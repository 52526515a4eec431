"""Hard rules on the next token, written like sampling.py's transforms.

A rule turns scores (N, V) into scores with the tokens it forbids at -inf. Unlike the
sampling transforms, a rule may depend on where each sequence stands (at the start of a
line, halfway through a speaker's name), so it keeps a small state per sequence:

    state = rule.start(n)
    state = rule.advance(state, tokens)   # after every token read or drawn, (N,) ids
    scores = rule(state, scores)          # before the sampling transforms

Generation applies rules before repetition penalty, temperature, top-k and top-p, so the
transforms reshape only what the rules allow. Like the transforms, rules work on numpy
arrays, so exported models (``scriptrnn.runtime``, no PyTorch) follow them too.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

import numpy as np


class SuppressTokens:
    """Never draw these tokens: a tokenizer's reserved ones (``<unk>``), and a model's style tags (the prime
    chooses the style, not the model). Hugging Face's ``SuppressTokensLogitsProcessor``."""

    def __init__(self, token_ids: Iterable[int], vocab_size: int):
        self.mask = np.zeros(vocab_size, dtype=bool)  # (V,)
        self.mask[list(token_ids)] = True

    def start(self, n: int) -> None:
        return None

    def advance(self, state, tokens: Sequence[int]) -> None:
        return None

    def __call__(self, state, scores: np.ndarray) -> np.ndarray:
        return np.where(self.mask, -np.inf, scores)


class CastMask:
    """Every line starts with an allowed speaker's cue, a [direction], or ends at once (a blank line).

    The cues (``jerry:`` as token ids) form a trie, and each sequence's state is its node:
    ROOT at a line start, FREE once the line is past its start. At ROOT the next token must
    begin a cue, open a direction or end the line; inside a cue it must continue one; after a
    cue's colon, or inside a direction, anything goes until the line break. At word level a
    cue is mostly one word and a colon, so this masks the other speakers' names at line
    starts; at char level it lets the name be spelled one character at a time.

    Masking alone would hand the other speakers' share of a line start to the directions
    (a model that wants GLOUCESTER next would write "[Enter ...]" lines instead): so at a
    line start, the chance the model gives to a speech by anyone goes to the cast, in the
    proportions it gives them, and directions and blank lines keep their own chance.
    """

    ROOT, FREE = 0, -1

    def __init__(self, cues: Sequence[Sequence[int]], newline_id: int, free_starts: Sequence[int], vocab_size: int):
        self.children: list[dict[int, int]] = [{}]  # node -> {token: next node}
        self.complete: set[int] = set()  # nodes a whole cue (its colon included) ends at
        for cue in cues:
            node = self.ROOT
            for token in cue:
                if token not in self.children[node]:
                    self.children.append({})
                    self.children[node][token] = len(self.children) - 1
                node = self.children[node][token]
            self.complete.add(node)
        self.newline_id = newline_id
        self.allowed = np.zeros((len(self.children), vocab_size), dtype=bool)  # (nodes, V)
        for node, children in enumerate(self.children):
            self.allowed[node, list(children)] = True
        self.allowed[self.ROOT, [newline_id, *free_starts]] = True
        self.cue_starts = np.array(sorted(self.children[self.ROOT]), dtype=np.int64)  # first tokens of cues
        self.speech = np.ones(vocab_size, dtype=bool)  # (V,) what may start a speech: not these
        self.speech[[newline_id, *free_starts]] = False

    def start(self, n: int) -> list[int]:
        return [self.ROOT] * n  # generation starts where lines start (after the prime's line break)

    def advance(self, state: list[int], tokens: Sequence[int]) -> list[int]:
        return [self._next(node, int(token)) for node, token in zip(state, tokens)]

    def _next(self, node: int, token: int) -> int:
        if token == self.newline_id:
            return self.ROOT
        following = self.children[node].get(token) if node != self.FREE else None
        # Off the trie (a direction, the cue's colon passed, or a prime the user wrote): free.
        return self.FREE if following is None or following in self.complete else following

    def __call__(self, state: list[int], scores: np.ndarray) -> np.ndarray:
        nodes = np.asarray(state, dtype=np.int64)  # (N,)
        scores = self._speeches_to_the_cast(nodes == self.ROOT, scores)
        allowed = self.allowed[np.maximum(nodes, 0)]  # (N, V)
        forbidden = (nodes >= 0)[:, None] & ~allowed
        return np.where(forbidden, -np.inf, scores)

    def _speeches_to_the_cast(self, at_start: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Raise the cues' first tokens so their share is the whole share of speeches, in log space."""
        if not at_start.any() or not len(self.cue_starts):
            return scores
        rows, starts = scores[at_start], self.cue_starts  # (R, V) (a copy), (C,)
        speech = _logsumexp(np.where(self.speech, rows, -np.inf))  # (R,)
        cast = _logsumexp(rows[:, starts])  # (R,)
        with np.errstate(invalid="ignore"):  # inf - inf: nothing to lift
            lift = np.nan_to_num(speech - cast, nan=0.0, posinf=0.0, neginf=0.0).clip(min=0.0)
        rows[:, starts] += lift[:, None].astype(rows.dtype)
        scores = scores.copy()
        scores[at_start] = rows
        return scores


def _logsumexp(x: np.ndarray) -> np.ndarray:
    """log(sum(exp(x))) over the last axis, (R, K) -> (R,), as torch.logsumexp: -inf for a row of -inf."""
    top = x.max(axis=-1)  # (R,)
    finite = np.isfinite(top)
    with np.errstate(divide="ignore", invalid="ignore"):
        total = np.exp(x - np.where(finite, top, 0.0)[:, None]).sum(axis=-1)
        return np.where(finite, top + np.log(total), top)


class TurnTaking:
    """Turns as a script takes them: no speaker follows himself, and no direction is addressed to the one
    speaking ("elaine: (to elaine)"). On by default for a model that knows speakers (issue 26).

    Each sequence keeps its current line's tokens, the speaker who opened it (a known name at the line's
    start followed by the colon or a bracket: "jerry:", "jerry (o.c.):") and the speaker of the last
    speech (a blank line keeps it, a direction or heading line ends it, as the text report counts turns).
    A path it must not finish (the last speaker's name at a line start; "(to " and the speaker's own name
    inside his speech) is cut at the first token that tells it from every other name (a name that
    starts a longer one, "jerry" in "jerry and george", is cut at its last token): at word level that is
    the name itself. At a line start the chance the model gave the last speaker goes to the other
    speakers, in the proportions it gives them, not to words that start no speech.
    """

    def __init__(self, names: Sequence[Sequence[int]], addressed: Sequence[Sequence[int]], newline_id: int,
                 cue_ends: Iterable[int], vocab_size: int):
        self.names = [tuple(n) for n in names]  # speaker i's name as token ids
        self.addressed = [tuple(a) for a in addressed]  # "(to jerry" as token ids, same order
        self.name_of = {n: i for i, n in enumerate(self.names)}
        self.name_cut = _cuts(self.names)  # tokens before the telling one
        self.addressed_cut = _cuts(self.addressed)
        self.newline_id = newline_id
        self.cue_ends = frozenset(cue_ends)  # what ends a name in a cue: the colon, an opening bracket
        self.name_starts = np.array(sorted({n[0] for n in self.names if n}), dtype=np.int64)
        self.longest = max((len(n) for n in self.names), default=0)

    def start(self, n: int) -> list[dict]:
        return [{"line": [], "speaker": None, "last": None} for _ in range(n)]

    def advance(self, state: list[dict], tokens: Sequence[int]) -> list[dict]:
        for s, token in zip(state, tokens):
            token = int(token)
            if token == self.newline_id:
                if s["speaker"] is not None:
                    s["last"] = s["speaker"]
                elif s["line"]:
                    s["last"] = None  # a direction or heading between two speeches: no turn across it
                s["line"], s["speaker"] = [], None
                continue
            line = s["line"]
            if s["speaker"] is None and token in self.cue_ends and len(line) <= self.longest:
                s["speaker"] = self.name_of.get(tuple(line))
            line.append(token)
        return state

    def __call__(self, state: list[dict], scores: np.ndarray) -> np.ndarray:
        scores = scores.copy()
        for i, s in enumerate(state):
            last, line = s["last"], s["line"]
            if last is not None and s["speaker"] is None:
                cut = self.name_cut[last]
                if len(line) == cut and tuple(line) == self.names[last][:cut]:
                    self._forbid(scores, i, self.names[last][cut], lift=cut == 0)
            speaker = s["speaker"]
            if speaker is not None and self.addressed[speaker]:
                cut, path = self.addressed_cut[speaker], self.addressed[speaker]
                if len(line) >= cut and tuple(line[len(line) - cut:]) == path[:cut]:
                    self._forbid(scores, i, path[cut], lift=False)
        return scores

    def _forbid(self, scores: np.ndarray, row: int, token: int, lift: bool) -> None:
        """``token`` at -inf in ``row``; with ``lift`` its share goes to the other speakers' names."""
        if lift and len(self.name_starts):
            others = self.name_starts[self.name_starts != token]
            if len(others):
                before = _logsumexp(scores[row:row + 1, self.name_starts])[0]
                after = _logsumexp(scores[row:row + 1, others])[0]
                if np.isfinite(before) and np.isfinite(after):
                    scores[row, others] += before - after
        scores[row, token] = -np.inf


def _cuts(paths: Sequence[tuple]) -> list[int]:
    """For each path, how many of its tokens come before the first one no other path shares there (a path
    that starts a longer one: all but its last). Counted once over every prefix, not path against path: a
    model's 500 speakers are 250,000 pairs."""
    distinct = set(paths)
    shared = Counter(p[:i] for p in distinct for i in range(1, len(p) + 1))  # prefix -> paths that have it
    return [next((i for i in range(len(p)) if shared[p[:i + 1]] == 1), max(len(p) - 1, 0)) for p in paths]


def _telling(path: tuple, paths: Sequence[tuple]) -> int:
    """``_cuts`` for one ``path`` among ``paths``."""
    return _cuts([path, *paths])[0]
