"""Sharing models on the Hugging Face Hub: model cards, ``hf:OWNER/NAME`` references, push.

Owns the model card written with every run and export (card.py: the Hub's README.md format,
written from the run's own config.json), turning an ``hf:OWNER/NAME[@revision]`` reference
into a directory in the Hub library's cache (download.py: called by the one loader, so every
command and ``scriptrnn.load`` accept it, and the downloaded folder meets every check a local
one does), and choosing and uploading what a shared model needs (share.py). The Hub library
is imported only when a reference or a push needs it; this file imports nothing.
"""
