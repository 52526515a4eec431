"""scriptrnn sweep: config checks, real tiny runs, a real kill and restart, the tables, report and plots."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import scriptrnn
from scriptrnn.cli import main
from scriptrnn.sweep import build_config, read_toml
from scriptrnn.sweep.config import format_value, parse_assignment
from scriptrnn.sweep.report import conclusions
from scriptrnn.sweep.runner import OUTCOME_FILE
from scriptrnn.sweep.usage import ResourceMonitor

from .conftest import TINY_TRAIN
from .test_interrupts import SLOW_CLI

# A baseline small enough that a run of 40 steps takes well under a second.
BASELINE = """
[baseline]
hidden_size = 16
embedding_size = 8
layers = 1
seq_len = 16
batch_size = 8
eval_every = 15
eval_tokens = 2000
"""
TINY_SETS = ["--set", "hidden_size=16", "--set", "embedding_size=8", "--set", "layers=1", "--set", "seq_len=16",
             "--set", "batch_size=8", "--set", "eval_every=15", "--set", "eval_tokens=2000"]


def write_study(tmp_path: Path, body: str, data: Path | None = None) -> Path:
    path = tmp_path / "study.toml"
    sweep = f'[sweep]\ndata = ["{data.name}"]\nout = "out"\n' if data else ""
    if data and data.parent != tmp_path:
        (tmp_path / data.name).write_bytes(data.read_bytes())
    path.write_text(sweep + BASELINE + body, encoding="utf-8")
    return path


# ---------------------------------------------------------------- the configuration


def test_a_full_study_file_is_read_and_resolved(tmp_path):
    path = write_study(tmp_path, """
[budget]
max_steps = 40

[[study]]
kind = "one_at_a_time"
vary = { seq_len = [8, 32], lr = [1, 1e-2] }

[[study]]
kind = "grid"
vary = { "hidden-size" = [16, 32], cell = ["gru", "lstm"] }

[[study]]
kind = "grid"
vary = { dropout = [0.0, 0.2] }

[[study]]
kind = "optuna"
trials = 6
space = { lr = { low = 1e-4, high = 1e-2, log = true }, num_layers = { low = 1, high = 3 }, cell = ["gru", "lstm"] }
""", data=tmp_path / "corpus.txt")
    config = build_config(read_toml(path), path.parent)
    assert config.source.data == [str(tmp_path / "corpus.txt")]  # relative to the study file
    assert config.out == tmp_path / "out"
    b = config.baseline
    assert (b["num_layers"], b["hidden_size"], b["seq_len"], b["lr"]) == (1, 16, 16, 3e-3)  # 'layers' alias
    assert (b["max_steps"], b["epochs"], b["time_budget"]) == (40, None, None)  # the budget is the only limit
    assert [s.name for s in config.studies] == ["one-at-a-time", "grid", "grid-2", "optuna"]
    assert config.studies[0].vary["lr"] == [1.0, 0.01] and isinstance(config.studies[0].vary["lr"][0], float)
    assert config.studies[1].vary == {"hidden_size": [16, 32], "cell": ["gru", "lstm"]}
    optuna = config.studies[3]
    assert optuna.space["num_layers"]["int"] and not optuna.space["lr"]["int"]
    assert optuna.startup_trials == 2  # a third of the trials, at least 2, rather than Optuna's 10


def test_command_line_values_are_read_as_toml():
    assert parse_assignment("lr=1e-3,3e-3", "--grid") == ("lr", [1e-3, 3e-3])
    assert parse_assignment("cell=gru,lstm", "--grid") == ("cell", ["gru", "lstm"])
    assert parse_assignment("tie_weights=true,false", "--vary") == ("tie_weights", [True, False])
    assert parse_assignment(" hidden_size = 128 , 256 ", "--grid") == ("hidden_size", [128, 256])


def test_values_are_shown_short_but_never_merged():
    assert [format_value(v) for v in (1e-3, 3e-3, 1e-05, 0.0030001, 256, "gru")] == [
        "0.001", "0.003", "1e-05", "0.0030001", "256", "gru"]
    assert format_value(0.0064664227174145595) == "0.006466"  # drawn by Optuna: four digits


def _one_line_error(capsys, argv, match):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert match in err, err


BAD_STUDIES = [
    ("[budget]\nmax_steps = 40\n[[study]]\nkind = 'grid'\nvary = { hiden_size = [16] }",
     "unknown setting 'hiden_size' (did you mean 'hidden_size'?)"),
    ("[budget]\nmax_steps = 40\n[[study]]\nkind = 'grid'\nvary = { hidden_size = ['big'] }",
     "hidden_size must be a whole number, got 'big'"),
    ("[budget]\nmax_steps = 40\n[[study]]\nkind = 'one_at_a_time'\nvary = { lr = [1e-3, -1] }",
     "study 'one-at-a-time', lr=-1: --lr must be a positive number"),
    ("[budget]\nmax_steps = 40\n[[study]]\nkind = 'one_at_a_time'\nvary = { lr = [] }",
     "lr needs a non-empty list of values"),
    ("[budget]\nmax_steps = 40\n[[study]]\nkind = 'random'\nvary = { lr = [1e-3] }",
     "kind must be one of one_at_a_time, grid, optuna, got 'random'"),
    ("[budget]\nmax_steps = 40\n[[study]]\nkind = 'grid'\nvary = { lr = [1e-3] }\ntrials = 3",
     "a grid study takes kind, name, vary, not trials"),
    ("[budget]\nmax_steps = 40\n[[study]]\nkind = 'optuna'\nspace = { lr = [1e-3] }", "needs trials = N"),
    ("[budget]\nmax_steps = 40\n[[study]]\nkind = 'optuna'\ntrials = 2\nspace = { lr = { low = 1e-2, high = 1e-3 } }",
     "low must be a number below high"),
    ("[budget]\nmax_steps = 40\n[[study]]\nname = 'a'\nkind = 'grid'\nvary = { lr = [1e-3] }\n"
     "[[study]]\nname = 'a'\nkind = 'grid'\nvary = { lr = [1e-2] }", "two studies are named 'a'"),
    ("[budget]\nsteps = 40\n[[study]]\nkind = 'grid'\nvary = { lr = [1e-3] }", "[budget]: unknown setting 'steps'"),
    ("[[study]]\nkind = 'grid'\nvary = { lr = [1e-3] }", "give each run a budget"),
    ("[budget]\nmax_steps = 40\n", "nothing to sweep"),
    ("[budget]\nmax_steps = 40\n[studies]\nkind = 'grid'", "unknown section(s) studies"),
    ("[budget]\nmax_steps = 40\n[[study]\nkind = 'grid'", "not valid TOML"),
]


@pytest.mark.parametrize("body, message", BAD_STUDIES)
def test_bad_study_files_are_refused_in_one_line_before_any_run(capsys, tmp_path, body, message):
    path = write_study(tmp_path, body)
    _one_line_error(capsys, ["sweep", path, "--out", tmp_path / "out"], message)
    assert not (tmp_path / "out").exists()


def test_bad_command_line_studies_are_refused_in_one_line(capsys, tmp_path):
    _one_line_error(capsys, ["sweep", "--grid", "hidden_size", "--max-steps", "5"], "write SETTING=VALUE")
    _one_line_error(capsys, ["sweep", "--grid", "hidden_size=8", "--set", "lr=1,2", "--max-steps", "5"],
                    "--set takes one")
    _one_line_error(capsys, ["sweep", "--vary", "cell=gru,transformer", "--max-steps", "5"],
                    "--cell must be one of lstm, gru, rnn, got 'transformer'")
    _one_line_error(capsys, ["sweep", tmp_path / "missing.toml"], "no such sweep file")


# ---------------------------------------------------------------- real sweeps


def read_rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def search_trials(out: Path, name: str, storage: str | None = None) -> int:
    """How many trials the Optuna search ``name`` holds in the sweep's storage."""
    import optuna

    storage = storage or f"sqlite:///{out / 'sweep.db'}"
    names = [n for n in optuna.study.get_all_study_names(storage) if n.endswith(f"-{name}")]
    assert len(names) == 1, names
    return len(optuna.load_study(study_name=names[0], storage=storage).trials)


def test_command_line_sweep_makes_runs_tables_report_and_plots(tmp_path, dialogue_file, capsys):
    out, tb = tmp_path / "out", tmp_path / "tb"
    code = main(["sweep", "--vary", "seq_len=8,32", "--vary", "lr=1e-2", "--grid", "cell=gru,lstm",
                 "--grid", "hidden_size=16,24", "--max-steps", "30", "--data", str(dialogue_file), *TINY_SETS,
                 "--out", str(out), "--quiet", "--tensorboard", str(tb)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    runs = sorted(p.name for p in (out / "runs").iterdir())
    # baseline, 3 varied, 3 grid points that are not the baseline (cell=lstm, hidden_size=16 is)
    assert len(runs) == 7 and sum(name.startswith("baseline-") for name in runs) == 1
    rows = read_rows(out)
    assert [(r["study"], r["parameter"], r["value"]) for r in rows[:4]] == [
        ("one-at-a-time", "baseline", ""), ("one-at-a-time", "seq_len", "8"), ("one-at-a-time", "seq_len", "32"),
        ("one-at-a-time", "lr", "0.01")]
    assert len(rows) == 4 + 5  # each study's table starts with the baseline
    for row in rows:
        assert row["status"] == "finished" and row["steps"] == "30"
        assert float(row["held_out_loss"]) > 0 and float(row["final_train_loss"]) > 0
        assert float(row["wall_clock_s"]) > 0 and float(row["tokens_per_s"]) > 0 and float(row["peak_rss_mib"]) > 10
        assert row["gpu_util_percent"] == row["gpu_memory_mib"] == "n/a"  # a CPU run
    document = json.loads((out / "results.json").read_text())
    assert document["sweep"]["baseline"]["max_steps"] == 30 and len(document["runs"]) == len(rows)
    assert document["runs"][0]["gpu_util_percent"] is None
    report = (out / "report.md").read_text()
    assert "**seq_len**" in report and "**lr**" in report and "**grid** (grid over cell, hidden_size" in report
    assert "| seq_len | 32 |" in report and "![Validation loss of every run](plots/grid-validation.png)" in report
    for name in ("one-at-a-time-validation", "one-at-a-time-loss-vs-time", "grid-validation", "grid-loss-vs-time"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert printed.out.startswith("- **seq_len**") and "report.md" in printed.out
    assert len(list(tb.glob("*/events.out.tfevents.*"))) == 7  # one TensorBoard run per training run


def test_the_python_api_runs_a_study_file(tmp_path, dialogue_file):
    path = write_study(tmp_path, "[budget]\nmax_steps = 20\n[[study]]\nkind = 'one_at_a_time'\n"
                                 "vary = { dropout = [0.0] }\n", data=dialogue_file)
    rows = scriptrnn.sweep.run_sweep(path, progress=False)
    assert [r["label"] for r in rows] == ["baseline", "dropout=0"]
    assert (tmp_path / "out" / "report.md").exists()  # [sweep] out, relative to the file


def test_optuna_search_prunes_and_a_longer_search_keeps_its_trials(tmp_path, dialogue_file, capsys):
    # A learning rate 3,000 times too small trains nothing: once a good trial has ended, such a run is
    # behind the median at its first check and pruned there. (With seed 10, Optuna's TPE draws the
    # good rate first and the bad one third.)
    study = ("[budget]\nmax_steps = 30\n[[study]]\nkind = 'optuna'\ntrials = {n}\nstartup_trials = 1\nseed = 10\n"
             "space = {{ lr = [3e-2, 1e-5], hidden_size = {{ low = 8, high = 16, step = 8 }} }}\n")
    path = write_study(tmp_path, study.format(n=4), data=dialogue_file)
    assert main(["sweep", str(path), "--quiet"]) == 0
    rows = read_rows(tmp_path / "out")
    assert [r["label"] for r in rows] == ["baseline", "trial 1", "trial 2", "trial 3", "trial 4"]
    assert {r["status"] for r in rows} <= {"finished", "pruned"}
    assert {r["value"] for r in rows[1:]} <= {"0.03, 8", "0.03, 16", "1e-05, 8", "1e-05, 16"}
    pruned = [r for r in rows if r["status"] == "pruned"]
    assert any(r["value"].startswith("1e-05") for r in pruned)
    assert all(r["steps"] == "15" and r["stopped_because"].startswith("pruned") for r in pruned)
    assert all(float(r["held_out_loss"]) > 0 for r in pruned)  # scored all the same, for the table
    assert search_trials(tmp_path / "out", "optuna") == 4  # in the study's own storage, OUT/sweep.db
    ended = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "runs").glob(f"*/{OUTCOME_FILE}")}
    capsys.readouterr()

    # Asking for two more trials: the first four come back from their runs, none trained again.
    path.write_text(path.read_text().replace("trials = 4", "trials = 6"))
    assert main(["sweep", str(path), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "optuna: 4 trial(s) done earlier, skipped" in err and "1 of 1 planned run(s) done earlier" in err
    assert err.count(": training (") <= 2  # fewer when TPE asks for settings already run
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in ended.items())
    assert [r["label"] for r in read_rows(tmp_path / "out")][1:] == [f"trial {i}" for i in range(1, 7)]


def test_a_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path, dialogue_file):
    # A batch the corpus cannot fill is refused by train(); the other runs still happen.
    out = tmp_path / "out"
    code = main(["sweep", "--vary", "batch_size=4096,4", "--max-steps", "20", "--data", str(dialogue_file),
                 *TINY_SETS, "--out", str(out), "--quiet"])
    assert code == 0
    rows = {r["value"]: r for r in read_rows(out)}
    assert rows["4096"]["status"] == "failed" and "needs at least" in rows["4096"]["message"]
    assert rows["4"]["status"] == "finished"
    assert "4096 did not finish" in (out / "report.md").read_text()


# ---------------------------------------------------------------- kill and restart


def start_sweep(args, delay):
    env = {**os.environ, "TEST_STEP_DELAY": str(delay), "TEST_KILL_IN_WRITE": "0", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", SLOW_CLI, *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(proc, condition, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the sweep ended early: {proc.communicate()}"
        if condition():
            return
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("the sweep made no progress")


def run_dirs(out: Path) -> dict[str, Path]:
    """label -> run folder ('baseline', 'seq_len=8', ...), from the folder names."""
    return {p.name.rsplit("-", 1)[0]: p for p in (out / "runs").iterdir()} if (out / "runs").exists() else {}


def test_a_killed_sweep_redoes_no_finished_run_and_resumes_the_interrupted_one(tmp_path, dialogue_file, capsys):
    out = tmp_path / "out"
    # Two checks per run (each also draws the run's loss curve, the slow part of a tiny run).
    args = ["sweep", "--vary", "seq_len=8,32", "--max-steps", "40", "--data", dialogue_file, *TINY_SETS,
            "--set", "eval_every=20", "--out", out, "--quiet"]

    def checkpointed(label, outcome=False):
        def ready():
            run = run_dirs(out).get(label)
            return bool(run) and (run / ("sweep_result.json" if outcome else "resume.safetensors")).exists()
        return ready

    # Ctrl-C in the second run: it saves and stops; the sweep says how to go on.
    proc = start_sweep(args, delay=0.01)
    wait_until(proc, checkpointed("seq_len=8"))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Resume with: scriptrnn sweep --vary seq_len=8,32" in err

    # Restarted, then killed outright in the third run. (The interrupted run went back to the end
    # of the queue, as Optuna's retries do.)
    proc = start_sweep(args, delay=0.01)
    wait_until(proc, checkpointed("seq_len=32"))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    finished = {label: (run / OUTCOME_FILE).stat().st_mtime_ns for label, run in run_dirs(out).items()
                if (run / OUTCOME_FILE).exists()}
    assert set(finished) == {"baseline"}
    killed = run_dirs(out)["seq_len=32"]
    steps_before = [json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()]

    capsys.readouterr()
    assert main([str(a) for a in args]) == 0  # the restart, in this process: the dead worker's run is taken over
    err = capsys.readouterr().err
    assert "1 of 3 planned run(s) done earlier, skipped" in err
    assert "seq_len=32: resuming from its last checkpoint" in err and "seq_len=8: resuming" in err
    assert ": training (" not in err
    for label, mtime in finished.items():  # untouched
        assert (run_dirs(out)[label] / OUTCOME_FILE).stat().st_mtime_ns == mtime
    rows = {r["label"]: r for r in read_rows(out)}
    assert list(rows) == ["baseline", "seq_len=8", "seq_len=32"]
    assert rows["seq_len=32"]["resumed"] == "True" and rows["seq_len=32"]["steps"] == "40"
    assert rows["seq_len=8"]["resumed"] == "True"  # resumed after the Ctrl-C
    steps_after = [json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert steps_after[0] == steps_before[0] and max(steps_after) == 40  # one log, continued


def test_a_killed_optuna_search_resumes_its_interrupted_trial(tmp_path, dialogue_file, capsys):
    path = write_study(tmp_path, "[budget]\nmax_steps = 40\n[[study]]\nkind = 'optuna'\ntrials = 2\n"
                                 "startup_trials = 1\nspace = { lr = { low = 1e-3, high = 3e-2, log = true } }\n",
                       data=dialogue_file)
    out = tmp_path / "out"

    def second_trial_checkpointed():
        runs = list((out / "runs").glob("*")) if (out / "runs").exists() else []
        ended = [p for p in runs if (p / OUTCOME_FILE).exists()]
        started = [p for p in runs if (p / "resume.safetensors").exists() and not (p / OUTCOME_FILE).exists()]
        return len(ended) == 2 and bool(started)  # the baseline and trial 1 ended, trial 2 saved once

    proc = start_sweep(["sweep", path, "--quiet", "--set", "eval_every=20"], delay=0.01)
    wait_until(proc, second_trial_checkpointed)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    capsys.readouterr()

    assert main(["sweep", str(path), "--quiet", "--set", "eval_every=20"]) == 0
    err = capsys.readouterr().err
    assert "optuna: 1 trial(s) done earlier, skipped" in err
    assert "optuna: trial 2: resuming from its last checkpoint" in err and err.count(": training (") == 0
    rows = read_rows(out)
    assert [r["label"] for r in rows] == ["baseline", "trial 1", "trial 2"]
    assert rows[2]["resumed"] == "True" and rows[2]["status"] in ("finished", "pruned")
    assert search_trials(out, "optuna") == 3  # trial 2 and its retry, which resumed it


# ---------------------------------------------------------------- pieces


def test_conclusions_name_the_best_value_its_gain_and_its_time():
    def row(parameter, value, loss, seconds, status="finished"):
        return {"study": "s", "kind": "one_at_a_time", "parameter": parameter, "value": value,
                "held_out_loss": loss, "wall_clock_s": seconds, "status": status}

    rows = [row("baseline", "", 2.0, 10.0), row("seq_len", "64", 1.9, 15.0), row("seq_len", "256", 1.95, 30.0),
            row("lr", "0.01", 2.1, 10.0), row("lr", "1", None, 1.0, status="failed")]
    lines = conclusions(rows, {"seq_len": 128, "lr": 0.003})
    assert lines[0] == ("**seq_len**: 64 beats the baseline's 128: held-out 1.900 vs 2.000 (0.100 nats better), "
                        "in 1.50x the baseline's time (15 s vs 10 s).")
    assert lines[1] == ("**lr**: the baseline's 0.003 stays best (held-out 2.000); the next best, 0.01, is 0.100 "
                        "nats worse in 1.00x the time (1 did not finish).")


def test_a_callback_can_end_a_run_as_finished(tmp_path, dialogue_file):
    def finish_at_20(event, trainer):
        if event == "on_step" and trainer.state.step == 20:
            trainer.finish_requested = "pruned: test"

    result = scriptrnn.train(dialogue_file, tmp_path / "run", callbacks=[finish_at_20],
                             **dict(TINY_TRAIN, max_steps=60))
    assert (result.steps, result.stopped_because) == (20, "pruned: test")
    assert result.metrics["loss"] > 0  # the final evaluation ran, unlike after an interrupt


def test_peak_memory_is_measured_per_run():
    with ResourceMonitor(torch.device("cpu")) as small:
        pass
    with ResourceMonitor(torch.device("cpu")) as big:
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        del block
    small, big = small.results(), big.results()
    assert small["peak_rss_scope"] == big["peak_rss_scope"] == "run"  # Linux: reset for each run
    assert big["peak_rss_mib"] - small["peak_rss_mib"] > 50
    assert big["gpu_util_percent"] is None and big["gpu_memory_mib"] is None
