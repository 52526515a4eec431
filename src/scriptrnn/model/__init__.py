"""The model stage: the network, and model directories on disk.

Owns the PyTorch network (network.py) and its training-time dropouts (regularisation.py: the
AWD-LSTM recipe), what a model directory is without PyTorch (directory.py: its files and format,
``is_exported``, the one place that tells a run from an export, and ``read_config``, the one
reader of its config.json, as the typed run record of record.py), the one loader for any model directory, trained or exported
(loader.py), checkpoints (checkpoint.py: weights in safetensors, never a pickle), and ONNX
export and the onnxruntime model it makes (export.py, onnx.py; onnx_check.py checks a graph is
one the exporter writes before onnxruntime runs it). Safe reading and atomic
writing of files sit on the ground floor (scriptrnn/files.py), held-out scoring in
evaluation/. directory.py, record.py, the loader, onnx.py and onnx_check.py import no PyTorch at module level, so an
exported model loads without it; this file imports nothing.
"""
