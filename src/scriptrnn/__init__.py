"""scriptrnn: train recurrent networks on scripts and books, and write new ones.

    import scriptrnn
    scriptrnn.train("seinfeld.txt", "runs/seinfeld", level="word", time_budget=10)
    print(scriptrnn.load("runs/seinfeld").generate("jerry", max_new_tokens=200)[0])
"""

__version__ = "0.1.0"

from .api import evaluate, info, load, pretrained_dir, train  # noqa: E402
from .errors import ScriptRNNError  # noqa: E402
from .model import ModelConfig, RNNLanguageModel  # noqa: E402
from .sampling import SamplingConfig  # noqa: E402
from .tokenizer import create_lookup_tables, token_lookup  # noqa: E402
from .trainer import TrainConfig  # noqa: E402

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
