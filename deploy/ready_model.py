"""Make a training run the ready model that ships in the package (issue 15, item 2).

    python deploy/ready_model.py RUN [--out src/scriptrnn/pretrained/shakespeare-char]

Copies the run's config.json and tokenizer.json and writes its best weights in float16, half
the bytes of float32 (the package keeps the model under 10 MB); the loader copies them into a
float32 model, so nothing downstream changes. float16 rather than bfloat16: its 10-bit mantissa
keeps three more bits of each weight (LSTM weights are small, far from float16's limits), and
numpy reads it, for tools that look at the file without PyTorch. The resume file, samples and
metrics logs stay behind. TRAINED_WITH.md, beside the model, is written by hand: the command,
its time and its figures (score the written copy with `scriptrnn evaluate OUT`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from scriptrnn.model.checkpoint import load_tensors, save_tensors
from scriptrnn.model.directory import WEIGHTS_FILE
from scriptrnn.files import CONFIG_FILE, TOKENIZER_FILE

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "scriptrnn" / "pretrained" / "shakespeare-char"
FLOAT16_MAX = torch.finfo(torch.float16).max


def write_half(run: Path, out: Path) -> int:
    """The run's files into ``out``, weights in float16; returns the bytes written."""
    tensors, metadata = load_tensors(run / WEIGHTS_FILE)
    half = {}
    for name, tensor in tensors.items():
        if tensor.is_floating_point():
            if tensor.abs().max() > FLOAT16_MAX:
                raise SystemExit(f"{run}: weight {name} exceeds float16's range; ship it in float32")
            tensor = tensor.to(torch.float16)
        half[name] = tensor.contiguous()
    out.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_FILE, TOKENIZER_FILE):
        shutil.copyfile(run / name, out / name)
    save_tensors(out / WEIGHTS_FILE, half, {**metadata, "stored_as": "float16"})
    return sum((out / name).stat().st_size for name in (CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a directory `scriptrnn train --out` wrote")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the ready model goes")
    args = parser.parse_args(argv)
    if not (args.run / WEIGHTS_FILE).is_file():
        raise SystemExit(f"{args.run} holds no {WEIGHTS_FILE}; give a directory `scriptrnn train --out` wrote")
    size = write_half(args.run, args.out)
    print(f"{args.out}: {size / 2**20:.1f} MiB (weights in float16)", file=sys.stderr)


if __name__ == "__main__":
    main()
