"""scriptrnn: train recurrent networks on scripts and books, and write new ones.

    import scriptrnn
    scriptrnn.train("seinfeld.txt", "runs/seinfeld", level="word", time_budget=10)
    print(scriptrnn.load("runs/seinfeld").generate("jerry", max_new_tokens=200)[0])
"""

__version__ = "0.1.0"

import sys  # noqa: E402
import types  # noqa: E402

from .errors import ScriptRNNError  # noqa: E402
from .sampling import SamplingConfig  # noqa: E402
from .tokenizer import create_lookup_tables, token_lookup  # noqa: E402

# Imported on first use: these need PyTorch, and `scriptrnn.runtime` (an exported model
# with onnxruntime) must import without it.
_NEEDS_TORCH = {"evaluate": "api", "info": "api", "load": "api", "pretrained_dir": "api", "train": "api",
                "ModelConfig": "model", "RNNLanguageModel": "model", "TrainConfig": "trainer"}


def __getattr__(name: str):
    if name in _NEEDS_TORCH:
        from importlib import import_module

        try:
            return getattr(import_module(f".{_NEEDS_TORCH[name]}", __name__), name)
        except ModuleNotFoundError as e:
            if e.name != "torch":
                raise
            raise ModuleNotFoundError(f"scriptrnn.{name} needs PyTorch: pip install 'scriptrnn[train]' (an exported "
                                      "model runs without it: scriptrnn.runtime.load)", name="torch") from None
    raise AttributeError(f"module 'scriptrnn' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_NEEDS_TORCH])


class _Package(types.ModuleType):
    def __setattr__(self, name, value):
        # Importing the submodule evaluate.py records it here as `evaluate`, which would hide
        # the function scriptrnn.evaluate; the function wins, as when it was imported eagerly.
        if name in _NEEDS_TORCH and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "ModelConfig",
    "RNNLanguageModel",
    "SamplingConfig",
    "ScriptRNNError",
    "TrainConfig",
    "create_lookup_tables",
    "evaluate",
    "info",
    "load",
    "pretrained_dir",
    "token_lookup",
    "train",
]
