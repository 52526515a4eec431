"""The training stage: a corpus and settings in, a run directory out.

Owns every training default (config.py: ``TrainConfig``, the per-level defaults, the
fine-tuning defaults, the output-layer policy, and ``resolve``, which layers them all into a run's
settings and records which layer decided each), setting a run up or resuming it
(setup.py; its text learnt and encoded in two streamed passes by prepare.py, a resume's
command checked against the run by same_run.py), starting from a parent's weights
(init_from.py), the loop (loop.py:
``Trainer``), the one training step and optimizer that the loop, the sizing probe and sweeps
share (step.py), the run's clock (schedule.py: learning rate, limits, cool-down, where the
time went), its exact resume state (resume.py), several processes with DDP
(distributed.py), progress and metrics (reporting.py), samples while it learns
(samples.py) and --size auto (sizing.py: the rule; probe.py: this machine's speed; load.py: other programs' share of the
run's cores while the probe timed). Named ``training`` rather than ``train`` so that ``scriptrnn.train`` stays
the function and dotted paths such as ``scriptrnn.training.loop.Trainer`` resolve.
"""
