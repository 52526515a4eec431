"""The generation stage: writing text with a loaded model, token by token.

Owns the model as a writer (script_model.py: ``ScriptModel``, prime handling, styles,
speakers), one request's state and the single token loop that the terminal, the server's
batcher and the serverless handler all drive (generation.py), sampling as small numpy
transforms (sampling.py, with ``SamplingConfig``: every sampling default), hard rules on
next tokens (constraints.py), stop sequences matched at a cost per token that does not grow
with their number (stops.py) and speaker and cast handling (speakers.py). Output formats
(Fountain, HTML and PDF) come from data/fountain.py, whose reader and writer share one
grammar; the report on samples is evaluation/text_report.py. No PyTorch anywhere here: the
network behind a ``ScriptModel`` is anything with ``prefill`` and ``step`` (see generation.py).
"""
