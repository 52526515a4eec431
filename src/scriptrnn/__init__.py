"""scriptrnn: train recurrent networks on scripts and books, and write new ones.

    import scriptrnn
    scriptrnn.train("seinfeld.txt", "runs/seinfeld", level="word", time_budget=10)
    print(scriptrnn.load("runs/seinfeld").generate("jerry", max_new_tokens=200)[0])

One package per stage, in the order text goes through them: data/, generate/, model/,
evaluation/, training/, hub/ (the Hugging Face Hub), then server/ and sweep/ and the command (cli/); each folder's
``__init__.py`` says what it owns. The modules here: api.py (``train``, ``load``,
``evaluate``, ``info``), device.py (device, precision and threads, chosen in one place),
classic.py (the course notebooks' method, the benchmarks' baseline), __main__.py
(``python -m scriptrnn``) and the ground floor, which imports nothing above it: errors.py
(``ScriptRNNError``), version.py, files.py (safe reads, atomic writes), safe_json.py, paths.py (every user path
resolved, a link loop one line) and extras.py (which optional package each job needs, named by its
install extra).
"""

from .version import __version__  # noqa: F401 (scriptrnn.__version__, as every package has)
from .errors import ScriptRNNError
from .generate.sampling import SamplingConfig
from .data.tokenizer import create_lookup_tables, token_lookup

# Imported on first use: these need PyTorch, and `scriptrnn.runtime` (an exported model
# with onnxruntime) must import without it.
_NEEDS_TORCH = {"evaluate": "api", "info": "api", "load": "api", "pretrained_dir": "api", "train": "api",
                "ModelConfig": "model.network", "RNNLanguageModel": "model.network", "TrainConfig": "training.config"}


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
