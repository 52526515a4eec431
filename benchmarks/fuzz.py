"""Fuzz the corpus readers and the checkpoint loader with random and mutated bytes.

    python -m benchmarks.fuzz --seconds 60 [--seed 0] [--report FILE]

Needs only the test extras (Hypothesis generates the inputs and shrinks each failure
to a small one). The seeds are real files: two small runs (char and word level)
trained here in a few seconds, a dialogue text and a CSV export. Each target takes
an input, hands it to scriptrnn, and lets ScriptRNNError pass: a one-line message
is the right answer to a bad file. Anything else that escapes (a KeyError, a
TypeError, a torch RuntimeError, a crash) is a finding, printed with the smallest
input Hypothesis found. Bounded in time: targets run in turn, round after round,
until --seconds have passed.

Targets:
  corpus-bytes     random bytes and mutated text as a .txt file -> read_corpus, corpus_stats
  corpus-csv       mutated CSV exports -> read_corpus
  config-json      structurally mutated config.json -> load_checkpoint, then 5 tokens of generate
  tokenizer-json   structurally mutated tokenizer.json -> load_checkpoint, generate, encode
  weights-bytes    mutated model.safetensors bytes, or its header edited -> load_checkpoint, generate
  resume-bytes     mutated resume.safetensors bytes, or its header edited -> Trainer.load_resume
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from datetime import datetime, timezone
from pathlib import Path

import torch
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

import scriptrnn
from scriptrnn.errors import ScriptRNNError

DIALOGUE = (
    "jerry: what is the deal with airline food? i don't know.\n"
    "george: i am not a man of the sea, jerry!\n"
    "elaine: get out! (pushes him) you're kidding.\n"
    "kramer: \"giddy up,\" i said; and he left.\n"
)
CSV = ',Character,Dialogue,EpisodeNo\n0,JERRY,"Hello, Newman.",1\n1,NEWMAN,"Hello, Jerry.",1\n2,GEORGE,I\'m out.,2\n'
TINY = dict(hidden_size=16, embedding_size=8, num_layers=1, seq_len=8, batch_size=4, eval_every=5,
            eval_tokens=500, max_steps=5, progress=False)

# ---------------------------------------------------------------- mutations

INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\xff\xff\xff\xff\x7f", b"\x00" * 8,
               b"\n", b"\r", b",", b'"', b"{", b"}", b":", b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"NaN",
               b"-1", b"1e999", b"[]", b"null"]


@st.composite
def mutated(draw, original: bytes, max_ops: int = 8) -> bytes:
    """``original`` after a few random edits: flips, inserts, deletions, splices, truncation."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "duplicate", "interesting"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "truncate":
            del data[pos:]
        elif op == "duplicate":
            length = draw(st.integers(1, 64))
            data[pos:pos] = data[pos : pos + length]
        elif op == "interesting":
            value = draw(st.sampled_from(INTERESTING))
            data[pos : pos + len(value)] = value
    return bytes(data)


JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                 st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)


@st.composite
def mutated_json(draw, original: dict, max_ops: int = 4) -> bytes:
    """A structurally edited copy of a JSON object: values replaced, keys dropped or added, types changed."""
    data = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, max_ops))):
        node = data
        # Walk down a random path, then edit there.
        while isinstance(node, (dict, list)) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
            if not isinstance(node[key], (dict, list)):
                break
            node = node[key]
        if isinstance(node, dict):
            keys = sorted(node)
            op = draw(st.sampled_from(["replace", "delete", "add"] if keys else ["add"]))
            if op == "add":
                node[draw(st.text(max_size=8))] = draw(JSON_VALUES)
            else:
                key = draw(st.sampled_from(keys))
                if op == "delete":
                    del node[key]
                else:
                    node[key] = draw(JSON_VALUES)
        elif isinstance(node, list):
            op = draw(st.sampled_from(["replace", "delete", "add"] if node else ["add"]))
            if op == "add":
                node.insert(draw(st.integers(0, len(node))), draw(JSON_VALUES))
            else:
                i = draw(st.integers(0, len(node) - 1))
                if op == "delete":
                    del node[i]
                else:
                    node[i] = draw(JSON_VALUES)
    text = json.dumps(data, ensure_ascii=draw(st.booleans()))
    raw = text.encode("utf-8", "surrogatepass")
    return draw(mutated(raw, max_ops=2)) if draw(st.integers(0, 4)) == 0 else raw


@st.composite
def mutated_header(draw, original: bytes) -> bytes:
    """A safetensors file whose JSON header (dtypes, shapes, offsets, metadata) is edited, length kept right."""
    size = int.from_bytes(original[:8], "little")
    header = json.loads(original[8 : 8 + size])
    metadata = header.get("__metadata__", {})
    if metadata and draw(st.booleans()):
        # The resume file keeps its loop position and optimizer groups as JSON inside the metadata.
        key = draw(st.sampled_from(sorted(metadata)))
        inner = json.loads(metadata[key])
        edited = draw(mutated_json(inner if isinstance(inner, dict) else {"_": inner}))
        header["__metadata__"] = {**metadata, key: edited.decode("utf-8", "replace")}
        text = json.dumps(header).encode()
    else:
        text = draw(mutated_json(header))
    return len(text).to_bytes(8, "little") + text + original[8 + size :]


# ---------------------------------------------------------------- targets


class Workbench:
    """Seed files, and a scratch directory each input is written into."""

    def __init__(self, root: Path):
        self.root = root
        data = root / "seed" / "scripts.txt"
        data.parent.mkdir(parents=True)
        data.write_text(DIALOGUE * 40, encoding="utf-8")
        self.runs = {}
        for level in ("char", "word"):
            out = root / "seed" / level
            scriptrnn.train(data, out, level=level, **TINY)
            self.runs[level] = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
        self.data = data
        self.scratch = root / "scratch"

    def fresh_run(self, level: str, replace: dict[str, bytes]) -> Path:
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir()
        for name, content in {**self.runs[level], **replace}.items():
            (self.scratch / name).write_bytes(content)
        return self.scratch

    def fresh_file(self, name: str, content: bytes) -> Path:
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir()
        path = self.scratch / name
        path.write_bytes(content)
        return path


def load_and_write(run: Path) -> None:
    writer = scriptrnn.load(run)
    for prime in ("", "jerry", "jerry: hi"):
        try:
            writer.generate(prime, max_new_tokens=5, seed=0, num_return_sequences=2)
        except ScriptRNNError:
            pass


def target_corpus_bytes(bench: Workbench, data: bytes, name: str, encoding: str) -> None:
    from scriptrnn.data.corpus import corpus_stats, read_corpus

    corpus = read_corpus(bench.fresh_file(name, data), encoding=encoding)
    corpus_stats(corpus)


def target_corpus_csv(bench: Workbench, data: bytes, columns: tuple[str, str]) -> None:
    from scriptrnn.data.corpus import read_corpus

    read_corpus(bench.fresh_file("lines.csv", data), speaker_column=columns[0], dialogue_column=columns[1])


def target_run_file(bench: Workbench, level: str, name: str, data: bytes) -> None:
    run = bench.fresh_run(level, {name: data})
    load_and_write(run)
    if name == "tokenizer.json":
        tokenizer = scriptrnn.load(run).tokenizer
        tokenizer.decode(tokenizer.encode(DIALOGUE, strict=False))


def target_resume(bench: Workbench, level: str, data: bytes) -> None:
    import numpy as np

    from scriptrnn.model.checkpoint import build_model
    from scriptrnn.model.directory import read_config
    from scriptrnn.training.config import TrainConfig
    from scriptrnn.training.loop import Trainer

    run = bench.fresh_run(level, {"resume.safetensors": data})
    config = read_config(run)
    ids = np.arange(400) % config.model["vocab_size"]
    trainer = Trainer(build_model(config), ids, ids[:50], TrainConfig.from_dict(config.training), run,
                      level=level, progress=False)
    trainer.load_resume()


def strategies(bench: Workbench) -> dict:
    """name -> (strategy of argument tuples, function taking them)."""
    text = DIALOGUE.encode()
    corpus = st.tuples(
        st.one_of(st.binary(max_size=512), mutated(text), mutated(text.decode().encode("utf-16"))),
        st.sampled_from(["a.txt", "a", "a.md", "a.CSV"]),
        st.sampled_from(["utf-8", "latin-1", "utf-16", "cp1252", "utf-8-sig"]),
    )
    long_cell = CSV.encode() + b'3,KRAMER,"' + b"giddy up " * 20_000 + b'",2\n'  # one field > 128 KiB
    csv_input = st.tuples(st.one_of(mutated(CSV.encode()), st.binary(max_size=256), mutated(long_cell, 3)),
                          st.sampled_from([("Character", "Dialogue"), ("character", " dialogue "), ("", "")]))
    levels = st.sampled_from(["char", "word"])

    def json_file(name):
        return levels.flatmap(lambda level: st.tuples(
            st.just(level), st.just(name), mutated_json(json.loads(bench.runs[level][name]))))

    def bytes_file(name):
        return levels.flatmap(lambda level: st.tuples(
            st.just(level), st.just(name), st.one_of(mutated(bench.runs[level][name]), st.binary(max_size=64),
                                                      mutated_header(bench.runs[level][name]))))

    return {
        "corpus-bytes": (corpus, lambda args: target_corpus_bytes(bench, *args)),
        "corpus-csv": (csv_input, lambda args: target_corpus_csv(bench, *args)),
        "config-json": (json_file("config.json"), lambda args: target_run_file(bench, *args)),
        "tokenizer-json": (json_file("tokenizer.json"), lambda args: target_run_file(bench, *args)),
        "weights-bytes": (bytes_file("model.safetensors"), lambda args: target_run_file(bench, *args)),
        "resume-bytes": (bytes_file("resume.safetensors"),
                         lambda args: target_resume(bench, args[0], args[2])),
    }


# ---------------------------------------------------------------- the run


def signature(error: BaseException) -> str:
    """Type and innermost scriptrnn frame: one finding per distinct place."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "scriptrnn" in f.filename and "fuzz.py" not in f.filename] or frames
    where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno} in {ours[-1].name}" if ours else "?"
    return f"{type(error).__name__} at {where}"


try:
    _GROUP = BaseExceptionGroup
except NameError:  # Python 3.10: Hypothesis brings the backport
    from exceptiongroup import BaseExceptionGroup as _GROUP


def leaf_errors(error: BaseException) -> list[BaseException]:
    if isinstance(error, _GROUP):
        return [leaf for e in error.exceptions for leaf in leaf_errors(e)]
    return [error]


def run_target(name: str, strategy, function, *, examples: int, round_seed: int, deadline: float,
               counter: dict) -> list[BaseException]:
    @seed(round_seed)
    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck),
              report_multiple_bugs=True)
    @given(strategy)
    def check(args):
        if time.monotonic() > deadline:
            return
        counter[name] = counter.get(name, 0) + 1
        try:
            function(args)
        except ScriptRNNError:
            pass

    try:
        check()
    except Exception as error:  # a finding (or several, as a group)
        return leaf_errors(error)
    return []


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="time budget (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first round (default 0)")
    parser.add_argument("--examples", type=int, default=100, help="inputs per target per round (default 100)")
    parser.add_argument("--only", nargs="+", help="run only these targets")
    parser.add_argument("--report", type=Path, help="also write the summary (Markdown) to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    started = time.monotonic()
    deadline = started + args.seconds
    counter: dict[str, int] = {}
    findings: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="scriptrnn-fuzz-") as tmp:
        bench = Workbench(Path(tmp))
        targets = strategies(bench)
        names = args.only or list(targets)
        round_no = 0
        while time.monotonic() < deadline:
            for name in names:
                if time.monotonic() >= deadline:
                    break
                strategy, function = targets[name]
                for error in run_target(name, strategy, function, examples=args.examples,
                                        round_seed=args.seed + round_no, deadline=deadline, counter=counter):
                    key = signature(error)
                    if key not in findings:
                        notes = "\n".join(getattr(error, "__notes__", []))
                        findings[key] = {"target": name, "message": str(error)[:300], "example": notes[:1500]}
                        print(f"FINDING [{name}] {key}: {str(error)[:200]}\n{notes[:1500]}\n", flush=True)
            round_no += 1
    elapsed = time.monotonic() - started
    summary = report(args, elapsed, counter, findings)
    print(summary)
    if args.report:
        args.report.write_text(summary)
    return 1 if findings else 0


def report(args, elapsed: float, counter: dict, findings: dict) -> str:
    lines = [
        f"command: python -m benchmarks.fuzz --seconds {args.seconds:g} --seed {args.seed}",
        f"date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"torch {torch.__version__}, scriptrnn {scriptrnn.__version__}",
        f"duration: {elapsed:.0f} s; inputs: {sum(counter.values()):,} "
        f"({', '.join(f'{k} {v:,}' for k, v in counter.items())})",
        f"findings: {len(findings)}",
    ]
    for key, finding in findings.items():
        lines.append(f"- [{finding['target']}] {key}: {finding['message']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
