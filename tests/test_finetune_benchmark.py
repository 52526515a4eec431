"""benchmarks/finetune.py at smoke budgets: it runs every cell, writes JSON and Markdown per cell, skips on rerun.

Its figures at these budgets mean nothing; the real measurement is the lead's, on an idle machine.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import DIALOGUE
from scriptrnn.training.config import FINETUNE_DEFAULTS

REPO = Path(__file__).resolve().parents[1]


def test_smoke_run_writes_each_cell_and_a_rerun_skips_them(tmp_path):
    data = tmp_path / "scripts.txt"
    data.write_text(DIALOGUE * 300, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SCRIPTRNN_BENCH_WORK": str(tmp_path / "work"),
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "benchmarks.finetune", "--smoke", "--data", str(data),
               "--out", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "out" / "finetune.json").read_text())
    lr = f"lr={FINETUNE_DEFAULTS['lr']:g}"  # the default fine-tuning learning rate, as the script names it
    assert set(results["cells"]) == {f"finetune {lr} 0.03min", f"finetune {lr} 0.06min", "scratch 0.03min",
                                     "scratch 0.06min"}
    assert results["smoke"] and results["machine"]["cpu"] and results["machine"]["date"]
    assert all(cell["held_out_loss"] > 0 for cell in results["cells"].values())
    assert f"| finetune {lr} | 0.03 |" in (tmp_path / "out" / "finetune.md").read_text()
    again = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0 and again.stdout.count("done before, skipped") == 4
