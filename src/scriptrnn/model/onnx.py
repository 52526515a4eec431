"""An exported model's network: the ONNX graph under onnxruntime, no PyTorch needed.

    from scriptrnn.runtime import load          # the loader (model/loader.py) builds this
    writer = load("exported/seinfeld")          # a directory `scriptrnn export` wrote
    print(writer.generate("jerry", max_new_tokens=200, seed=1)[0])

Only the forward pass is onnxruntime's. The tokenizer, the sampling, the generation
loop and the server are the code the PyTorch path runs, so a prime, settings and
seed write the same text on both (tests/test_runtime.py). Install with
``pip install 'scriptrnn[runtime]'`` (numpy and onnxruntime).
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from pathlib import Path

import numpy as np

from ..errors import ScriptRNNError
from .directory import MODEL_FILE
from ..files import CONFIG_FILE, read_regular
from .onnx_check import check_exported_graph, graph_bytes_budget

__all__ = ["OnnxModel", "evaluate_loss"]


class OnnxModel:
    """The exported graph behind generation's model interface (``prefill``, ``step``: see generate/generation.py).

    A state is a tuple of numpy arrays (L, N, H): (h, c) for an LSTM, (h,) otherwise.
    """

    def __init__(self, directory: Path, record, threads: int | None = None):
        import onnxruntime  # here, so that telling exported models apart works without it

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: no graph-optimisation chatter on the terminal
        if threads is not None:
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        path = Path(directory) / MODEL_FILE
        self.session = _session(onnxruntime, path, options, record)
        self.facts, m = record.export, record.model  # a model.record.RunRecord, read by directory.read_config
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


def _session(onnxruntime, path: Path, options, record):
    """The graph, read once (within config.json's size), checked (onnx_check.py), and then handed to onnxruntime.

    onnxruntime gets the bytes that were checked, not the file name: the file cannot be swapped in between.
    """
    if not (path.exists() or path.is_symlink()):
        raise ScriptRNNError(f"{path.parent}: missing {path.name}; export the run again")
    data = read_regular(path, "the exported graph", graph_bytes_budget(record) + 16 * 2**20)
    check_exported_graph(data, path, record)
    try:
        with _signals_end_the_process():
            return onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own error types: a damaged or foreign file
        raise ScriptRNNError(f"{path}: not a graph onnxruntime can run ({str(e).splitlines()[0][:200]})") from None


@contextlib.contextmanager
def _signals_end_the_process():
    """SIGINT and SIGTERM end the process at once while onnxruntime builds a session.

    Python runs its signal handlers only between bytecodes, so a handler (Ctrl-C's
    KeyboardInterrupt, a server's graceful stop) waits for onnxruntime's C++ to return; the
    system's default action does not. Outside the main thread handlers cannot be changed, and
    there is nothing of ours to stop anyway.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    kept = {sig: signal.signal(sig, signal.SIG_DFL) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in kept.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


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
