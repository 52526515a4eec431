"""The model stage: the network, and model directories on disk.

Owns the PyTorch network (network.py), the one loader for any model directory, trained or
exported (loader.py; directory.py tells the kinds apart and is the one reader of config.json,
as the typed run record of record.py),
safe reading and atomic writing of files (files.py), checkpoints (checkpoint.py: weights in
safetensors, never a pickle), ONNX export and the onnxruntime model it makes (export.py,
onnx.py), and held-out loss (evaluate.py). The loader, record.py, files.py and onnx.py import no
PyTorch at module level, so an exported model loads without it; this file imports nothing.
"""
