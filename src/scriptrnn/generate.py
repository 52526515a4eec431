"""Writing text: run the prime once, then one step per new token, streamed.

``ScriptModel.stream`` is the single place text is made; the terminal, the
Python API and any server read from it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterator

import numpy as np
import torch

from .errors import ScriptRNNError
from .model import RNNLanguageModel
from .sampling import SamplingConfig, next_tokens


class ScriptModel:
    """A trained model with its tokenizer and run facts, ready to write."""

    def __init__(self, model: RNNLanguageModel, tokenizer, config: dict, device="cpu"):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.config = config
        self.device = torch.device(device)
        corpus = config.get("corpus", {})
        self.speakers: list[str] = list(corpus.get("speakers", []))
        self.newline_id = tokenizer.token_id("\n")

    @property
    def level(self) -> str:
        return self.tokenizer.level

    # ------------------------------------------------------------ prime

    def prime_text(self, prime: str) -> str:
        """A bare speaker name becomes the start of that speaker's line: 'jerry' -> 'jerry:'."""
        stripped = prime.strip()
        by_lower = {s.lower(): s for s in self.speakers}
        if stripped and "\n" not in stripped and stripped.lower() in by_lower:
            return by_lower[stripped.lower()] + ":"
        return prime

    def encode_prime(self, prime: str) -> tuple[np.ndarray, int]:
        """Prime ids with a leading line break for context, and how many ids are context only."""
        ids = self.tokenizer.encode(self.prime_text(prime))
        if prime.strip() and len(ids) == 0:
            raise ScriptRNNError(f"nothing in the prime {prime!r} is in the model's vocabulary")
        if self.newline_id is None:
            if len(ids) == 0:
                raise ScriptRNNError("this model needs a prime: give --prime with some text")
            return ids, 0
        # Generation starts as if at the start of a line, where speakers' names come.
        return np.concatenate([[self.newline_id], ids]).astype(np.int64), 1

    # ------------------------------------------------------------ writing

    @torch.no_grad()
    def stream(self, prime: str = "", config: SamplingConfig | None = None, **settings) -> Iterator[list[str]]:
        """Yield, step by step, the text each of the N sequences adds ('' once it has stopped).

        The first item is the prime as the model read it, so that joining all items
        of a sequence gives its whole text.
        """
        config = replace(config or SamplingConfig(), **settings).validate()
        ids, context = self.encode_prime(prime)
        n = config.num_return_sequences
        decoders = [self.tokenizer.decoder() for _ in range(n)]
        prime_text = "".join(decoders[0].step(int(i)) for i in ids[context:])
        for d in decoders[1:]:
            for i in ids[context:]:
                d.step(int(i))
        yield [prime_text] * n
        generator = torch.Generator(device=self.device)
        generator.manual_seed(config.seed if config.seed is not None else int(torch.randint(2**62, ()).item()))
        x = torch.as_tensor(ids, device=self.device).long().unsqueeze(0).expand(n, -1)  # (N, P)
        logits, state = self.model(x)
        scores = logits[:, -1]  # (N, V)
        seen = torch.zeros(n, self.tokenizer.vocab_size, dtype=torch.bool, device=self.device)
        seen[:, torch.as_tensor(ids, device=self.device).long()] = True
        processors, greedy = config.processors(), config.greedy
        lines = torch.zeros(n, dtype=torch.long, device=self.device)
        active = torch.ones(n, dtype=torch.bool, device=self.device)
        for _ in range(config.max_new_tokens):
            token = next_tokens(scores, seen, processors, greedy, generator)  # (N,)
            yield [d.step(int(t)) if a else "" for d, t, a in zip(decoders, token.tolist(), active.tolist())]
            seen[torch.arange(n, device=self.device), token] = True
            if config.stop_after_lines and self.newline_id is not None:
                lines += (token == self.newline_id) & active
                active &= lines < config.stop_after_lines
                if not active.any():
                    return
            logits, state = self.model(token.unsqueeze(1), state)  # (N, 1, V)
            scores = logits[:, -1]

    def generate(self, prime: str = "", config: SamplingConfig | None = None, **settings) -> list[str]:
        """The whole text of each sequence (prime included)."""
        pieces: list[list[str]] = []
        for step in self.stream(prime, config, **settings):
            pieces.append(step)
        return ["".join(column) for column in zip(*pieces)]
