"""The torch-free entry point users know: ``from scriptrnn.runtime import load``.

An exported model loads and generates with numpy and onnxruntime alone; the code lives in
``scriptrnn.model`` (the loader, the onnxruntime model) and this name is kept for the
scripts and docs that use it.
"""

from ..model.onnx import MODEL_FILE, OnnxModel, evaluate_loss, is_exported, load, load_any

__all__ = ["MODEL_FILE", "OnnxModel", "evaluate_loss", "is_exported", "load", "load_any"]
