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
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from ..errors import ScriptRNNError
from ..files import CONFIG_FILE, MAX_WEIGHTS_BYTES, TOKENIZER_FILE, read_json, read_regular, write_atomic
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


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file, refusing anything else (pickles included) with a clear message."""
    path = Path(path)
    data = read_regular(path, "the weights", MAX_WEIGHTS_BYTES)
    _refuse_non_safetensors(path, data)
    try:
        tensors = load_safetensors_bytes(data)
        metadata = _safetensors_metadata(data)
    except (SafetensorError, ValueError, json.JSONDecodeError) as e:
        raise ScriptRNNError(f"{path}: damaged or truncated safetensors file ({e})") from None
    return tensors, metadata


def _refuse_non_safetensors(path: Path, data: bytes) -> None:
    # A safetensors file opens with its header's length (8 bytes, little-endian) and then '{'.
    # Check that first: the length's first byte may well be 0x80, pickle's opening byte.
    header_len = int.from_bytes(data[:8], "little") if len(data) >= 10 else -1
    if 0 <= header_len <= len(data) - 8 and data[8:9] == b"{":
        return
    if data[:1] == b"\x80" or data[:2] == b"PK":
        raise ScriptRNNError(
            f"{path}: this is a pickle/PyTorch file, not safetensors; scriptrnn never loads pickles "
            "because they can run code"
        )
    if len(data) < 10:
        raise ScriptRNNError(f"{path}: damaged or truncated safetensors file ({len(data)} bytes)")
    raise ScriptRNNError(f"{path}: not a safetensors file, or truncated")


def _safetensors_metadata(data: bytes) -> dict[str, str]:
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    return header.get("__metadata__", {}) or {}


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
    try:
        _, metadata = load_tensors(path)
        return float(metadata["val_loss"])
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
    expected = model.state_dict()
    tied = {"decoder.weight"} if model.config.tie_weights else set()
    missing = set(expected) - set(tensors) - tied
    unexpected = set(tensors) - set(expected)
    if missing or unexpected:
        raise ScriptRNNError(
            f"{source}: weights do not match config.json (missing: {sorted(missing)[:3]}, "
            f"unexpected: {sorted(unexpected)[:3]})"
        )
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise ScriptRNNError(
                f"{source}: weight {name} has shape {tuple(tensor.shape)} but config.json needs "
                f"{tuple(expected[name].shape)}"
            )
        if tensor.is_floating_point() != expected[name].is_floating_point():
            # Whole numbers where the model keeps fractions (or the reverse) are not its weights: copying
            # them would load silently and write nonsense.
            raise ScriptRNNError(f"{source}: weight {name} is stored as {tensor.dtype} but the model "
                                 f"described by config.json keeps it as {expected[name].dtype}")
        if not torch.isfinite(tensor).all():
            raise ScriptRNNError(
                f"{source}: weight {name} holds NaN or infinite values (the run diverged or the file is "
                "damaged); use an earlier checkpoint or retrain with a lower --lr"
            )
    model.load_state_dict(tensors, strict=False)


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
    tensors, _ = load_tensors(run_dir / weights_file)
    # A damaged config.json can ask for a huge model; don't allocate one the weights can't fill.
    stored = sum(t.numel() for t in tensors.values())
    if settings.parameter_count() > 2 * stored + 1_000_000:
        raise ScriptRNNError(
            f"{run_dir / weights_file}: holds {stored:,} numbers but config.json describes a model of "
            f"{settings.parameter_count():,} parameters; the two files do not belong together"
        )
    model = RNNLanguageModel(settings)
    load_weights_into(model, tensors, run_dir / weights_file)
    return model.to(device), tokenizer, config
