"""The torch-free entry point users know: ``from scriptrnn.runtime import load``.

An exported model loads and generates with numpy and onnxruntime alone; the code lives in
``scriptrnn.model`` (the loader, the onnxruntime model) and this name is kept for the
scripts and docs that use it.
"""

from ..model.directory import MODEL_FILE, is_exported
from ..model.loader import load as load_any  # any model directory; a training run needs PyTorch
from ..model.loader import load_exported as load  # the exported-only load this name has meant
from ..model.onnx import OnnxModel, evaluate_loss

__all__ = ["MODEL_FILE", "OnnxModel", "evaluate_loss", "is_exported", "load", "load_any"]
