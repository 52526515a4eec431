"""The one loader: any model directory, trained or exported, becomes a ``ScriptModel`` ready to write.

A training run loads with PyTorch (imported only then); an exported model with onnxruntime,
so this module, and everything it imports at the top, must not need PyTorch. It never
imports the trainer: loading a model is not training one.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..data.styles import model_styles
from ..data.tokenizer import tokenizer_from_dict
from ..errors import ScriptRNNError
from ..generate.script_model import ScriptModel
from .directory import MODEL_FILE, is_exported, read_config, read_tokenizer_dict
from ..hub.download import resolve

PRETRAINED_NAME = "shakespeare-char"


def pretrained_dir() -> Path:
    """The small char-level Shakespeare model that ships inside the package."""
    return Path(str(resources.files("scriptrnn") / "pretrained" / PRETRAINED_NAME))


def model_directory(model=None) -> Path:
    """The directory a user's model argument names: None is the built-in model, ``hf:OWNER/NAME``
    a Hub model in the Hub library's cache (hub/download.py), anything else a path."""
    return resolve(model) if model is not None else pretrained_dir()


def load(directory=None, *, device: str = "cpu", threads: int | None = None) -> ScriptModel:
    """Any model directory (None: the built-in model), ready to ``.generate()``.

    An exported directory runs with onnxruntime, a training run with PyTorch. ``threads``:
    CPU threads for either library (PyTorch's setting is for the whole process).
    """
    _check_threads(threads)
    directory = model_directory(directory)
    if is_exported(directory):
        return load_exported(directory, device=device, threads=threads)
    from ..device import pick_device, set_threads
    from .checkpoint import load_checkpoint

    set_threads(threads)
    where = pick_device(device)
    model, tokenizer, record = load_checkpoint(directory, device=where)
    return ScriptModel(model, tokenizer, record, device=where)


def load_exported(directory, *, device: str = "cpu", threads: int | None = None) -> ScriptModel:
    """An exported model only (``scriptrnn.runtime.load``); ``threads``: onnxruntime's, None for its default."""
    from .onnx import OnnxModel

    directory = Path(directory)
    _check_threads(threads)
    record = read_config(directory, exported=True)
    tokenizer = tokenizer_from_dict(read_tokenizer_dict(directory))
    model = OnnxModel(directory, record, threads=threads)
    if model.vocab_size != tokenizer.vocab_size:
        raise ScriptRNNError(f"{directory}: tokenizer.json has {tokenizer.vocab_size} tokens but {MODEL_FILE} "
                             f"scores {model.vocab_size}; the files do not belong together")
    return ScriptModel(model, tokenizer, record, device=device)


def _check_threads(threads: int | None) -> None:
    if threads is not None and not 1 <= threads <= 1024:
        raise ScriptRNNError(f"--threads must be from 1 to 1024, got {threads}")


def info(directory=None) -> dict:
    """What a model is, from its config.json alone: level, cell, sizes, corpus, loss, styles, speakers, and
    which layer decided each setting (``settings``: name -> (value, decided by); empty for runs from before)."""
    directory = model_directory(directory)
    record = read_config(directory)
    tokenizer = tokenizer_from_dict(read_tokenizer_dict(directory))
    settings, corpus = _model_settings(record), record.corpus
    known_styles = model_styles(corpus.styles, tokenizer)  # checked: tags that the vocabulary holds
    styles = [{k: v for k, v in entry.to_dict().items() if k != "tag"} for entry in corpus.styles
              if entry.name in known_styles]
    return {"run": str(directory), "level": tokenizer.level, "cell": settings.cell, "layers": settings.num_layers,
            "hidden_size": settings.hidden_size, "embedding_size": settings.embedding_size,
            "vocab_size": settings.vocab_size, "parameters": settings.parameter_count(),
            "corpus": corpus.name, "characters": corpus.characters,
            "held_out": record.metrics.val if record.metrics else {}, "styles": styles,
            "speakers": list(corpus.speakers), "settings": _decided(record)}


def _decided(record) -> dict:
    """Each recorded setting with the layer that decided it (training/config.py ``resolve``)."""
    values = {**record.training, **record.model}
    return {name: [values.get(name), layer] for name, layer in record.decided_by.items()}


def _model_settings(record):
    from .checkpoint import model_config  # ModelConfig lives beside the PyTorch network

    return model_config(record)
