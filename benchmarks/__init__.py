"""The benchmarks behind every measured claim, a package run from the repository root as modules:

    python -m benchmarks.race --smoke          # not `python benchmarks/race.py`: the modules import each other

with scriptrnn importable (installed, or PYTHONPATH=src). What each module holds:

    common.py              what every benchmark shares: the corpora, one tokenization and split, the machine
                           (machine(), bf16_native()), results files (JsonStore, write_results, table)
    prove.py               issue 3's targets against the course method (baseline.py, its notebooks' code)
    race.py                scriptrnn against a small transformer and the course method for the same minutes;
                           its parts: race_transformer.py (the model), race_scoring.py (the same scoring for
                           all), race_report.py (OUT.json per cell, the tables, the picture)
    sizing.py              the measurement behind --size auto's rule
    finetune.py            --init-from the ready model against scratch
    held_out_names.py      where the ready model's held-out loss goes
    style_conditioning.py  one model for several styles against one model each
    prepare_scale.py       preparing 100 MB to 5 GB: time and peak memory
    runtime_bench.py       the exported model without PyTorch: install size, cold start, tokens/s, int8
    serve_load.py          concurrent streaming clients of `scriptrnn serve`; serve_soak.py: soak and slow clients
    ddp_throughput.py      several processes under torchrun against one
    fuzz.py                random and mutated bytes at the readers and the loader

Figures, with machine, date and command, are in RESULTS.md (raw: results/*.json).
"""
