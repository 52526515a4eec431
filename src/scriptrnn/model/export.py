"""ONNX export: a training run becomes a directory that onnxruntime generates from, without PyTorch.

    config.json     the run's config.json, its format "scriptrnn-onnx", plus an "export" section
    tokenizer.json  the run's vocabulary, unchanged
    model.onnx      ids (B, T) int64 and the state (L, B, H) in; the last position's logits
                    (B, V) and the new state out. B and T are dynamic: T = 1 is one generation
                    step, T = P runs a whole prime in one call from the zero state.

The state is h, or h and c for an LSTM. One graph serves both uses, so the weights are
stored once. It is checked against the PyTorch model before anything is written
(``scriptrnn.runtime`` runs it).
"""

from __future__ import annotations

import io
import logging
import shutil
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..version import __version__
from .directory import RESUME_FILE, WEIGHTS_FILE
from .checkpoint import load_checkpoint, write_json
from ..errors import ScriptRNNError
from ..extras import require
from ..files import CONFIG_FILE, TOKENIZER_FILE, write_atomic
from ..hub.card import write_card
from ..hub.download import resolve
from ..paths import real_path
from .network import RNNLanguageModel, state_parts
from .directory import EXPORT_FORMAT, EXPORT_VERSION, MODEL_FILE
from .record import Metrics, RunRecord

OPSET = 17  # onnxruntime has run it since 1.11; LSTM, GRU and RNN are plain ops there
QUANTIZE = ("int8",)
TOLERANCE = 1e-4  # largest difference from PyTorch an exported float graph may show


class _Graph(nn.Module):
    """ids (B, T), state parts (L, B, H) -> last logits (B, V), new state parts."""

    def __init__(self, model: RNNLanguageModel):
        super().__init__()
        self.model = model

    def forward(self, ids, *state):
        state = state if len(state) == 2 else state[0]  # an LSTM's (h, c), or h
        logits, state = self.model(ids, state, last=True)  # (B, 1, V)
        return (logits[:, 0], *state_parts(state))


def state_names(cell: str) -> list[str]:
    return ["h", "c"] if cell == "lstm" else ["h"]


def export_onnx(run_dir: Path, out: Path, *, quantize: str | None = None, overwrite: bool = False,
                sample: str | None = None) -> dict:
    """Export the run in ``run_dir`` (a training run or the built-in model) into ``out``; its export facts.

    ``out`` gets a model card (README.md) too, showing ``sample`` (a text the run wrote) if given.
    """
    require("`scriptrnn export`", "onnx", "onnxruntime")  # else PyTorch's exporter fails in 30 lines
    run_dir, out = resolve(run_dir), Path(out)
    if quantize is not None and quantize not in QUANTIZE:
        raise ScriptRNNError(f"--quantize must be one of {', '.join(QUANTIZE)}, got {quantize!r}")
    _check_out(run_dir, out, overwrite)
    model, tokenizer, config = load_checkpoint(run_dir)
    model.eval()
    names = state_names(model.config.cell)
    graph = _export_graph(model, names)
    if quantize:
        with tempfile.TemporaryDirectory(prefix="scriptrnn-export-") as tmp:
            graph = _quantize(graph, Path(tmp) / MODEL_FILE)
    _check_graph(graph, model, names, exact=quantize is None)
    facts = {"format": "onnx", "opset": OPSET, "graph": MODEL_FILE, "state": names, "quantize": quantize,
             "parameters": model.parameter_count(), "exported_by": f"scriptrnn {__version__}",
             "torch": torch.__version__}
    exported = _exported_config(config, facts)
    _write(out, graph, exported, tokenizer)
    write_card(out, exported, sample=sample)
    return facts


def _check_out(run_dir: Path, out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ScriptRNNError(f"--out {out} is a file, not a directory")
    if real_path(out) == real_path(run_dir) or (out / WEIGHTS_FILE).exists() or (out / RESUME_FILE).exists():
        raise ScriptRNNError(f"--out {out} holds a training run; export into another directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ScriptRNNError(f"--out {out} is not empty; pass --overwrite to replace an earlier export in it")


def _export_graph(model: RNNLanguageModel, names: list[str]) -> bytes:
    L, H = model.config.num_layers, model.config.hidden_size
    example = (torch.zeros(2, 3, dtype=torch.int64), *[torch.zeros(L, 2, H) for _ in names])
    outs = [f"{n}_out" for n in names]
    dynamic = {"ids": {0: "B", 1: "T"}, "logits": {0: "B"}, **{n: {1: "B"} for n in names + outs}}
    f = io.BytesIO()
    with warnings.catch_warnings():
        # The tracer warns about Python booleans inside nn.LSTM and about batch sizes; the graph
        # is checked against the model at other batch sizes and lengths instead (_check_graph).
        warnings.simplefilter("ignore")
        torch.onnx.export(_Graph(model).eval(), example, f, dynamo=False, opset_version=OPSET,
                          input_names=["ids", *names], output_names=["logits", *outs], dynamic_axes=dynamic)
    return f.getvalue()


def _quantize(graph: bytes, path: Path) -> bytes:
    """Dynamic int8 quantization: weights stored as int8, activations quantized as they come."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = path.with_suffix(".float.onnx")
    source.write_bytes(graph)
    # It logs advice to pre-process the graph (shape inference) first; this graph's shapes are all known.
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(source, path, weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)
    return path.read_bytes()


def _check_graph(graph: bytes, model: RNNLanguageModel, names: list[str], exact: bool) -> None:
    """Run the graph with onnxruntime at batch sizes and lengths it was not traced with; compare to PyTorch."""
    import onnxruntime

    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    V, L, H = model.config.vocab_size, model.config.num_layers, model.config.hidden_size
    for B, T in ((3, 1), (1, 7)):
        feeds = {"ids": rng.integers(0, V, (B, T)), **{n: rng.standard_normal((L, B, H), dtype=np.float32)
                                                        for n in names}}
        with torch.no_grad():
            want = _Graph(model)(*(torch.from_numpy(v) for v in feeds.values()))
        worst = max(float(np.abs(got - w.numpy()).max()) for got, w in zip(session.run(None, feeds), want))
        if not np.isfinite(worst) or (exact and worst > TOLERANCE):
            raise ScriptRNNError(f"the exported graph differs from the PyTorch model by {worst:.3g}; "
                                 "this is a bug, please report it")


def _exported_config(record: RunRecord, facts: dict) -> dict:
    """The exported model's config.json: the run's record, its format and an "export" section."""
    record = replace(record, format=EXPORT_FORMAT, format_version=EXPORT_VERSION, export=facts)
    if facts["quantize"]:
        # The run's held-out loss was measured on the float weights; keep it, but not as this model's.
        facts["float_metrics"] = record.metrics.val or None if record.metrics else None
        record = replace(record, metrics=replace(record.metrics or Metrics(), val={}))
    return record.to_dict()


def _write(out: Path, graph: bytes, config: dict, tokenizer) -> None:
    """Each file atomically, config.json last: a reader never finds a config beside another graph."""
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_FILE).unlink(missing_ok=True)  # an earlier export's: incomplete until the new one is in
        write_atomic(out / MODEL_FILE, graph)
        write_json(out / TOKENIZER_FILE, tokenizer.to_dict())
        write_json(out / CONFIG_FILE, config)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
