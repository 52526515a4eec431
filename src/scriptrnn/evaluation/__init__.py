"""The evaluation stage: how good a model is, measured on text it never trained on.

Owns held-out scoring (scoring.py: the loss over a token array, a model scored on a corpus,
``scriptrnn.evaluate`` and ``--samples``' report), where a run's own trained-on and held-out
text is (held_out.py: ``RunText``, the one reader of it from config.json), every token counted and bits per character (coverage.py), a run's own validation
files (val_data.py: ``--val-data``) and the text report on written samples (text_report.py:
known speakers, real words, distinct-n, copying, line lengths). Sits above the model and
below training, whose loop scores its validation text here; this file imports nothing.
Named ``evaluation`` rather than ``evaluate`` so that ``scriptrnn.evaluate`` stays the function
(importing a subpackage sets it as an attribute of its parent, hiding the function).
"""
