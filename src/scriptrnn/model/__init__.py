"""The model stage: the network, and model directories on disk.

Owns the PyTorch network (network.py), the one loader for any model directory, trained or
exported (loader.py: the only place that decides which it is, and the only config reader),
safe reading and atomic writing of files (files.py), checkpoints (checkpoint.py: weights in
safetensors, never a pickle), ONNX export and the onnxruntime model it makes (export.py,
onnx.py; onnx_check.py checks a graph is one the exporter writes before onnxruntime runs it),
and held-out loss (evaluate.py). The loader, files.py, onnx.py and onnx_check.py import no
PyTorch at module level, so an exported model loads without it; this file imports nothing.
"""
