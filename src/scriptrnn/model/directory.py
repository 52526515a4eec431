"""What a model directory is, without PyTorch: its files, its format, and its checked config.json.

Two kinds of directory exist: a training run (``scriptrnn train --out``: safetensors
weights) and an exported model (``scriptrnn export --out``: an ONNX graph). ``is_exported``
is the one place that tells them apart and ``read_config`` the one reader of their
config.json (a ``record.RunRecord``), so every caller (the loader, info, resume, export) checks them alike.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ScriptRNNError
from ..files import CONFIG_FILE, TOKENIZER_FILE, read_json
from ..paths import check_no_loop
from .record import RunRecord

# A training run
FORMAT_NAME = "scriptrnn-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
RESUME_FILE = "resume.safetensors"
# An exported model
EXPORT_FORMAT = "scriptrnn-onnx"
EXPORT_VERSION = 1
MODEL_FILE = "model.onnx"  # ids (B, T) and state in, last logits (B, V) and state out (export.py)

_PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".bin"}


def is_exported(directory) -> bool:
    """True for a directory ``scriptrnn export`` wrote (its graph or its config says so)."""
    directory = Path(directory)
    check_no_loop(directory)  # else a loop reads as "no such directory" here and a traceback elsewhere
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


def read_config(directory, *, exported: bool | None = None) -> RunRecord:
    """config.json of a run (``exported=False``) or an export (True) as its typed record, every field checked.

    None: whichever the directory is.
    """
    directory = Path(directory)
    check_no_loop(directory)
    if exported is None:
        exported = is_exported(directory)
    writer = "scriptrnn export --out" if exported else "scriptrnn train --out"
    if not directory.exists():
        raise ScriptRNNError(f"no such model directory: {directory}")
    if not directory.is_dir():
        raise ScriptRNNError(f"{directory} is a file; give the directory that `{writer}` wrote")
    pickles = sorted(p.name for p in directory.glob("*") if p.suffix in _PICKLE_SUFFIXES)
    if pickles and not exported and not (directory / CONFIG_FILE).exists():
        raise ScriptRNNError(
            f"{directory} holds {', '.join(pickles)}: pickle files are refused because loading them can run code"
        )
    path = directory / CONFIG_FILE
    config = read_json(path, "the model settings")
    if exported:
        _check_format(path, config, EXPORT_FORMAT, EXPORT_VERSION, "is not an exported scriptrnn model's config; "
                      "make one with `scriptrnn export RUN_DIR --out DIR`", "exported by a newer scriptrnn (format")
    else:
        _check_format(path, config, FORMAT_NAME, FORMAT_VERSION, "is not a scriptrnn checkpoint config",
                      "written by a newer scriptrnn (checkpoint format")
    if exported and not (isinstance(config.get("export"), dict) and isinstance(config.get("model"), dict)):
        raise ScriptRNNError(f"{path}: no 'export' and 'model' sections; export the run again")
    return RunRecord.from_dict(config, path)


def _check_format(path: Path, config: dict, name: str, newest: int, foreign: str, newer: str) -> None:
    if config.get("format") != name:
        raise ScriptRNNError(f"{path} {foreign}")
    version = config.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ScriptRNNError(f"{path}: invalid format_version {version!r}")
    if version > newest:
        raise ScriptRNNError(f"{path.parent} was {newer} {version}, this version reads up to {newest}); "
                             "upgrade scriptrnn")


def read_tokenizer_dict(directory) -> dict:
    """tokenizer.json's content (``data.tokenizer.tokenizer_from_dict`` builds the tokenizer)."""
    return read_json(Path(directory) / TOKENIZER_FILE, "the vocabulary")
