"""Where a char model's held-out loss on the built-in plays goes: speaker names it never saw, and the rest.

    python -m benchmarks.held_out_names [MODEL_DIR]     # default: the ready model in the package

The built-in corpus's held-out end (its last 10%: Macbeth, Othello, Romeo and Juliet, Timon of
Athens) is full of speakers the training plays never name. A name's characters at a line start
(up to its ": ") are split into names seen in the training 90% and names never seen; the held-out
text is read as one stream, the state carried, every character scored (~30 s on 2 cores).
"""

import re
import sys

import torch
import torch.nn.functional as F

import scriptrnn
from scriptrnn.data.sources import load_corpus

SPEAKER = re.compile(r"^([A-Z][A-Za-z .'-]+):", re.M)
CHUNK = 4096


def per_character_loss(model, ids: torch.Tensor) -> torch.Tensor:
    """loss[j]: nats for predicting ids[j + 1] from everything before it."""
    losses, state = [], None
    with torch.no_grad():
        for i in range(0, len(ids) - 1, CHUNK):
            y = ids[i + 1:i + 1 + CHUNK][None]
            logits, state = model(ids[i:i + y.shape[1]][None], state)
            losses.append(F.cross_entropy(logits[0].float(), y[0], reduction="none"))
    return torch.cat(losses)


def main(directory=None) -> None:
    loaded = scriptrnn.load(directory)
    text = load_corpus(None).text
    cut = int(len(text) * 0.9)
    train, held_out = text[:cut], text[cut:]
    seen = set(SPEAKER.findall(train))
    loss = per_character_loss(loaded.model.eval(), torch.tensor(list(loaded.tokenizer.encode(held_out)), dtype=torch.long))
    kind = torch.zeros(len(held_out), dtype=torch.long)  # 0 the rest, 1 a name seen in training, 2 never seen
    speeches = SPEAKER.findall(held_out)
    for m in SPEAKER.finditer(held_out):
        kind[m.start(1):m.end(1)] = 1 if m.group(1) in seen else 2
    kind, total = kind[1:len(loss) + 1], loss.sum().item()
    print(f"{sum(s not in seen for s in speeches) / len(speeches):.1%} of {len(speeches):,} held-out speeches "
          "have a speaker the training plays never name")
    for value, name in ((0, "the rest"), (1, "names seen in training"), (2, "names never seen")):
        part = loss[kind == value]
        print(f"{name}: {part.numel():,} characters, {part.mean().item():.3f} nats each, "
              f"{part.sum().item() / total:.1%} of the loss")
    print(f"all: {loss.mean().item():.4f} nats/char; without the unseen names: {loss[kind != 2].mean().item():.4f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
