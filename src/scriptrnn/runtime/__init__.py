"""Generate from an exported model with onnxruntime: no PyTorch needed.

    from scriptrnn.runtime import load
    writer = load("exported/seinfeld")          # a directory `scriptrnn export` wrote
    print(writer.generate("jerry", max_new_tokens=200, seed=1)[0])

Only the forward pass is onnxruntime's. The tokenizer, the sampling, the generation
loop and the server are the code the PyTorch path runs, so a prime, settings and
seed write the same text on both (tests/test_runtime.py). Install with
``pip install 'scriptrnn[runtime]'`` (numpy and onnxruntime).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import ScriptRNNError
from ..files import CONFIG_FILE, MAX_WEIGHTS_BYTES, TOKENIZER_FILE, check_regular, check_sections, read_json
from ..generate import ScriptModel
from ..tokenizer import tokenizer_from_dict

EXPORT_FORMAT = "scriptrnn-onnx"
EXPORT_VERSION = 1
MODEL_FILE = "model.onnx"  # ids (B, T) and state in, last logits (B, V) and state out (export.py)

__all__ = ["OnnxModel", "evaluate_loss", "is_exported", "load", "load_any"]


def is_exported(directory) -> bool:
    """True for a directory ``scriptrnn export`` wrote (its graph or its config says so)."""
    directory = Path(directory)
    if (directory / MODEL_FILE).is_file():
        return True
    path = directory / CONFIG_FILE
    if not directory.is_dir() or not (path.exists() or path.is_symlink()):
        return False  # the loader that runs next says what is missing
    try:
        # read_json refuses, in one line, a config.json that is a FIFO, a device or too big to be one.
        return read_json(path, "the model settings").get("format") == EXPORT_FORMAT
    except ScriptRNNError as e:
        if "not valid JSON" in str(e) or "expected a JSON object" in str(e):
            return False  # a damaged training run's config: its own loader explains
        raise


def load(directory, *, device: str = "cpu", threads: int | None = None) -> ScriptModel:
    """An exported model, ready to ``.generate()`` (``threads``: onnxruntime's, None for its default)."""
    directory = Path(directory)
    _check_threads(threads)
    config = read_export_config(directory)
    tokenizer = tokenizer_from_dict(read_json(directory / TOKENIZER_FILE, "the vocabulary"))
    model = OnnxModel(directory, config, threads=threads)
    if model.vocab_size != tokenizer.vocab_size:
        raise ScriptRNNError(f"{directory}: tokenizer.json has {tokenizer.vocab_size} tokens but {MODEL_FILE} "
                             f"scores {model.vocab_size}; the files do not belong together")
    return ScriptModel(model, tokenizer, config, device=device)


def load_any(directory, *, device: str = "cpu", threads: int | None = None) -> ScriptModel:
    """An exported directory with onnxruntime; a training run (None: the built-in model) with PyTorch.

    ``threads``: CPU threads for either library (PyTorch's setting is for the whole process).
    """
    _check_threads(threads)
    if directory is not None and is_exported(directory):
        return load(directory, device=device, threads=threads)
    import torch

    from ..api import load as load_run

    if threads is not None:
        torch.set_num_threads(threads)
    return load_run(directory, device=device)


def _check_threads(threads: int | None) -> None:
    if threads is not None and not 1 <= threads <= 1024:
        raise ScriptRNNError(f"--threads must be from 1 to 1024, got {threads}")


def read_export_config(directory: Path) -> dict:
    """config.json of an exported model, with its format checked."""
    if not directory.exists():
        raise ScriptRNNError(f"no such model directory: {directory}")
    if not directory.is_dir():
        raise ScriptRNNError(f"{directory} is a file; give the directory that `scriptrnn export --out` wrote")
    path = directory / CONFIG_FILE
    config = read_json(path, "the model settings")
    if config.get("format") != EXPORT_FORMAT:
        raise ScriptRNNError(f"{path} is not an exported scriptrnn model's config; "
                             "make one with `scriptrnn export RUN_DIR --out DIR`")
    version = config.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ScriptRNNError(f"{path}: invalid format_version {version!r}")
    if version > EXPORT_VERSION:
        raise ScriptRNNError(f"{directory} was exported by a newer scriptrnn (format {version}, this version "
                             f"reads up to {EXPORT_VERSION}); upgrade scriptrnn")
    check_sections(path, config)
    facts = config.get("export")
    if not isinstance(facts, dict) or not isinstance(config.get("model"), dict):
        raise ScriptRNNError(f"{path}: no 'export' and 'model' sections; export the run again")
    return config


class OnnxModel:
    """The exported graph behind generation's model interface (``prefill``, ``step``: see generate.py).

    A state is a tuple of numpy arrays (L, N, H): (h, c) for an LSTM, (h,) otherwise.
    """

    def __init__(self, directory: Path, config: dict, threads: int | None = None):
        import onnxruntime  # here, so that is_exported() and load_any() work without it

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: no graph-optimisation chatter on the terminal
        if threads is not None:
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        path = Path(directory) / MODEL_FILE
        self.session = _session(onnxruntime, path, options)
        self.facts, m = config["export"], config["model"]
        self.state_names = [i.name for i in self.session.get_inputs()[1:]]
        self.vocab_size, self.layers, self.hidden = m.get("vocab_size"), m.get("num_layers"), m.get("hidden_size")
        self._probe(path)

    def _probe(self, path: Path) -> None:
        """One token through the graph: its inputs, outputs and sizes must be the ones config.json describes."""
        sizes = (self.vocab_size, self.layers, self.hidden)
        if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes):
            raise ScriptRNNError(f"{path.parent / CONFIG_FILE}: the model's vocab_size, num_layers and "
                                 "hidden_size must be whole numbers")
        try:
            logits, states = self.step(np.zeros(1, dtype=np.int64), [self.zero_state(1)])  # (1, V), [(h, c)]
            fits = logits.shape == (1, self.vocab_size) and states[0][0].shape == (self.layers, 1, self.hidden)
        except Exception:  # onnxruntime's own error types: inputs the graph does not take
            fits = False
        if not fits or self.state_names != self.facts.get("state"):
            raise ScriptRNNError(f"{path} does not fit {CONFIG_FILE} (its inputs or sizes differ); "
                                 "export the run again")

    def to(self, device) -> "OnnxModel":
        if str(device) not in ("cpu", "auto"):
            raise ScriptRNNError(f"exported models run on the CPU with onnxruntime; --device {device} is for "
                                 "training runs (PyTorch)")
        return self

    def eval(self) -> "OnnxModel":
        return self  # nothing trains here; kept for the interface ScriptModel uses

    def parameter_count(self) -> int:
        return int(self.facts.get("parameters", 0))

    def prefill(self, ids: np.ndarray, n: int) -> tuple[np.ndarray, tuple]:
        """Run a prime (P,) once, in one call, and copy its state for n sequences: scores (n, V), state."""
        feeds = {"ids": np.asarray(ids, dtype=np.int64)[None], **dict(zip(self.state_names, self.zero_state(1)))}
        logits, *state = self.session.run(None, feeds)  # (1, V), (L, 1, H) each
        return np.repeat(logits, n, axis=0), tuple(np.repeat(s, n, axis=1) for s in state)  # (L, n, H)

    def step(self, tokens: np.ndarray, states: list[tuple]) -> tuple[np.ndarray, list[tuple]]:
        """One token (B,) for the sequences of several states, as one batch; scores (B, V), states advanced."""
        feeds = {"ids": np.asarray(tokens, dtype=np.int64)[:, None]}  # (B, 1)
        for k, name in enumerate(self.state_names):
            feeds[name] = states[0][k] if len(states) == 1 else np.concatenate([s[k] for s in states], axis=1)
        logits, *state = self.session.run(None, feeds)  # (B, V), (L, B, H) each
        cuts = np.cumsum([s[0].shape[1] for s in states])[:-1]
        split = [np.split(part, cuts, axis=1) for part in state]  # per part: one (L, N, H) per state
        return logits, [tuple(parts) for parts in zip(*split)]

    def zero_state(self, batch: int) -> tuple:
        return tuple(np.zeros((self.layers, batch, self.hidden), dtype=np.float32) for _ in self.state_names)


def _session(onnxruntime, path: Path, options):
    if not (path.exists() or path.is_symlink()):
        raise ScriptRNNError(f"{path.parent}: missing {path.name}; export the run again")
    check_regular(path, "the exported graph", MAX_WEIGHTS_BYTES)  # onnxruntime opens it by name
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own error types: a damaged or foreign file
        raise ScriptRNNError(f"{path}: not a graph onnxruntime can run ({str(e).splitlines()[0][:200]})") from None


def evaluate_loss(model: OnnxModel, ids: np.ndarray, *, streams: int = 32) -> tuple[float, int]:
    """Mean cross-entropy (nats) over ``ids`` and how many positions were scored.

    The streams and positions of ``scriptrnn.evaluate.evaluate_loss`` (the PyTorch path),
    stepped one token at a time, so the two figures compare.
    """
    streams = max(1, min(streams, (len(ids) - 1) // 2))
    n = (len(ids) - 1) // streams
    starts = np.arange(streams, dtype=np.int64) * n  # (S,)
    ids = np.asarray(ids, dtype=np.int64)
    state, total = [model.zero_state(streams)], 0.0
    for t in range(n):
        logits, state = model.step(ids[starts + t], state)  # (S, V)
        logits = logits.astype(np.float64)
        top = logits.max(axis=-1)
        log_norm = top + np.log(np.exp(logits - top[:, None]).sum(axis=-1))  # (S,)
        total += float((log_norm - logits[np.arange(streams), ids[starts + t + 1]]).sum())
    count = n * streams
    return (total / count if count else math.nan), count
