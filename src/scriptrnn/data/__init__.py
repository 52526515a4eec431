"""The data stage: from files on disk to batches of token ids.

Owns what a corpus is and where it comes from (sources.py: the typed source of a run,
saved in its config.json), reading text, dialogue, CSV and Fountain files (corpus.py,
fountain.py), the same read in pieces for corpora larger than memory (stream.py) and learnt
in one pass (scan.py), the built-in Shakespeare plays (shakespeare.py), styles (styles.py:
one model, many voices), tokenizers (tokenizer.py; subword.py: byte pairs with Hugging Face
tokenizers), the run's memory-mapped token cache
(token_cache.py) and cutting ids into training batches (batching.py). Only batching needs
PyTorch; everything else here is used by an exported model without it, so this file
imports nothing.
"""
