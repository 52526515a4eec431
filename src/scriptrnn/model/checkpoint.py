"""Checkpoint directories: data only, written atomically, loadable on any device.

A run directory holds:

    config.json        format version, model and training settings, corpus facts, metrics
    tokenizer.json     the vocabulary and how to split text
    model.safetensors  the best weights so far (what ``generate`` loads)
    resume.safetensors latest weights + optimizer + RNG, with the loop position in
                       its JSON metadata: one file, so it is complete or absent

Nothing here ever unpickles: weights go through safetensors, everything else is
JSON. Every file is written to a temporary name in the same directory, flushed,
fsync'd and renamed, so a crash at any moment leaves the previous complete file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from ..errors import ScriptRNNError
from ..files import (CONFIG_FILE, MAX_WEIGHTS_BYTES, TOKENIZER_FILE, read_json, read_regular,
                     read_safetensors_header, write_atomic)
from .directory import FORMAT_NAME, FORMAT_VERSION, WEIGHTS_FILE, read_config
from .network import ModelConfig, RNNLanguageModel
from .record import RunRecord
from ..data.tokenizer import tokenizer_from_dict



# ---------------------------------------------------------------- JSON


def write_json(path: Path, data: dict) -> None:
    write_atomic(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


# ---------------------------------------------------------------- tensors


def unique_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop aliases (tied weights share storage; safetensors refuses shared tensors)."""
    seen, out = set(), {}
    for name, tensor in state.items():
        key = (tensor.data_ptr(), tensor.shape)
        if key in seen:
            continue
        seen.add(key)
        out[name] = tensor.detach().cpu().contiguous()
    return out


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    write_atomic(path, save_safetensors_bytes(tensors, metadata=metadata))


def load_tensors(path: Path, max_data_bytes: int = MAX_WEIGHTS_BYTES) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file, refusing anything else (pickles included) with a clear message.

    The header is read and checked first (files.read_safetensors_header): a file longer than
    its header says, or holding more than ``max_data_bytes`` of tensors, is refused unread.
    """
    path = Path(path)
    header = read_safetensors_header(path, "the weights", max_data_bytes)
    data = read_regular(path, "the weights", header.size)
    try:
        tensors = load_safetensors_bytes(data)
    except (SafetensorError, ValueError) as e:
        raise ScriptRNNError(f"{path}: damaged or truncated safetensors file ({e})") from None
    return tensors, header.metadata


# ---------------------------------------------------------------- checkpoints


def save_run_files(out_dir: Path, record: RunRecord | dict, tokenizer) -> None:
    """Write config.json (the run's record) and tokenizer.json, each atomically.

    A dict is config.json's sections by name, written as given (tools and tests write small or damaged runs so).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    data = record.to_dict() if isinstance(record, RunRecord) else \
        {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **record}
    write_json(out_dir / CONFIG_FILE, data)
    write_json(out_dir / TOKENIZER_FILE, tokenizer.to_dict())


def save_weights(out_dir: Path, model: RNNLanguageModel, val_loss: float | None = None) -> None:
    """The best weights, with the validation loss that made them best in the file's metadata."""
    metadata = None if val_loss is None else {"val_loss": repr(float(val_loss))}
    save_tensors(out_dir / WEIGHTS_FILE, unique_tensors(model.state_dict()), metadata=metadata)


def saved_best_loss(out_dir: Path) -> float | None:
    """The validation loss stored with model.safetensors, if the file has one."""
    path = Path(out_dir) / WEIGHTS_FILE
    try:  # the header alone: the loss is in its metadata
        return float(read_safetensors_header(path, "the weights").metadata["val_loss"])
    except (ScriptRNNError, KeyError, ValueError):
        return None


def model_config(record: RunRecord) -> ModelConfig:
    """The checked ModelConfig of a run's record."""
    if not record.model:
        raise ScriptRNNError("config.json has no 'model' settings")
    try:
        return ModelConfig.from_dict(record.model)
    except TypeError as e:
        raise ScriptRNNError(f"config.json has invalid model settings ({e})") from None


def build_model(record: RunRecord) -> RNNLanguageModel:
    return RNNLanguageModel(model_config(record))


def load_weights_into(model: RNNLanguageModel, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Copy tensors into the model, explaining any mismatch in one line."""
    check_weights_fit(model, {n: (tuple(t.shape), t.dtype) for n, t in tensors.items()}, source)
    for name, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise ScriptRNNError(
                f"{source}: weight {name} holds NaN or infinite values (the run diverged or the file is "
                "damaged); use an earlier checkpoint or retrain with a lower --lr"
            )
    model.load_state_dict(tensors, strict=False)


def check_weights_fit(model: RNNLanguageModel, stored: dict[str, tuple[tuple, torch.dtype]], source: Path) -> None:
    """Weights (name: (shape, dtype)) must be the ones config.json's model keeps; one line if not.

    Checked from a safetensors header before any data is read, and again on the tensors. (Not on a
    model built on the meta device: initialising one imports torch._dynamo, 70 MB and a second at every
    load; the caller has already refused a config.json whose model the file cannot fill.)
    """
    expected = {n: (tuple(t.shape), t.dtype) for n, t in model.state_dict().items()}
    tied = {"decoder.weight"} if model.config.tie_weights else set()
    missing = set(expected) - set(stored) - tied
    unexpected = set(stored) - set(expected)
    if missing or unexpected:
        raise ScriptRNNError(
            f"{source}: weights do not match config.json (missing: {sorted(missing)[:3]}, "
            f"unexpected: {sorted(unexpected)[:3]})"
        )
    for name, (shape, dtype) in stored.items():
        if shape != expected[name][0]:
            raise ScriptRNNError(f"{source}: weight {name} has shape {shape} but config.json needs {expected[name][0]}")
        if dtype.is_floating_point != expected[name][1].is_floating_point:
            # Whole numbers where the model keeps fractions (or the reverse) are not its weights: copying
            # them would load silently and write nonsense.
            raise ScriptRNNError(f"{source}: weight {name} is stored as {dtype} but the model "
                                 f"described by config.json keeps it as {expected[name][1]}")


# safetensors' element type names (files.DTYPE_BYTES) as PyTorch's.
_TORCH_DTYPES = {name: getattr(torch, torch_name, torch.uint8) for name, torch_name in (
    ("BOOL", "bool"), ("U8", "uint8"), ("I8", "int8"), ("F8_E5M2", "float8_e5m2"), ("F8_E4M3", "float8_e4m3fn"),
    ("I16", "int16"), ("U16", "uint16"), ("F16", "float16"), ("BF16", "bfloat16"), ("I32", "int32"),
    ("U32", "uint32"), ("F32", "float32"), ("I64", "int64"), ("U64", "uint64"), ("F64", "float64"))}


def weights_budget(settings: ModelConfig) -> int:
    """The most bytes a weights file of this model can hold: every parameter as float64, and some slack."""
    return 8 * settings.parameter_count() + 2**20


def load_checkpoint(run_dir: Path, *, weights_file: str = WEIGHTS_FILE, device="cpu"):
    """(model, tokenizer, record) from a run directory, on ``device``."""
    run_dir = Path(run_dir)
    config = read_config(run_dir, exported=False)
    tokenizer = tokenizer_from_dict(read_json(run_dir / TOKENIZER_FILE, "the vocabulary"))
    settings = model_config(config)
    if settings.vocab_size != tokenizer.vocab_size:
        raise ScriptRNNError(
            f"{run_dir}: tokenizer.json has {tokenizer.vocab_size} tokens but the model expects "
            f"{settings.vocab_size}"
        )
    path = run_dir / weights_file
    # The header first: a file bigger, or tensors other, than config.json's model is refused unread.
    header = read_safetensors_header(path, "the weights", weights_budget(settings))
    # A damaged config.json can ask for a huge model; don't allocate one the weights can't fill.
    stored = sum(math.prod(e.shape) for e in header.tensors.values())
    if settings.parameter_count() > 2 * stored + 1_000_000:
        raise ScriptRNNError(
            f"{path}: holds {stored:,} numbers but config.json describes a model of "
            f"{settings.parameter_count():,} parameters; the two files do not belong together"
        )
    model = RNNLanguageModel(settings)
    check_weights_fit(model, {n: (e.shape, _TORCH_DTYPES[e.dtype]) for n, e in header.tensors.items()}, path)
    tensors, _ = load_tensors(path, header.data_bytes)
    load_weights_into(model, tensors, path)
    return model.to(device), tokenizer, config
