"""The run's clock (training/schedule.py): the whole command inside --time-budget, where the time went,
a warning when training runs far below the probe's speed, and more time for a finished run."""

import json
import math

import pytest

import scriptrnn
from scriptrnn.cli import main
from scriptrnn.training.config import TrainConfig
from scriptrnn.training.resume import LoopState
from scriptrnn.training.schedule import NothingToTrain, Schedule, SlowWatch, TimeSpent, new_segment

from .conftest import TINY_TRAIN


def test_a_rate_far_below_the_probe_s_for_a_stretch_is_said_once():
    watch = SlowWatch(236_000, budget_s=300, device="cpu")  # the stretch: 5% of 5 minutes, 15 s
    assert watch.update(66_000, 10.0, 100) is None  # below a third: the stretch begins
    assert watch.update(200_000, 20.0, 200) is None  # back up: a passing burst, nothing said
    assert watch.update(12_000, 30.0, 300) is None
    assert watch.update(9_000, 40.0, 400) is None  # 10 s below: not yet a sustained stretch
    line = watch.update(1_000, 45.5, 500)
    assert line == ("training is running at 1.0k tokens/s, the probe measured 236.0k: another program is using "
                    "the CPU; the run will see fewer tokens than planned")
    assert watch.said == {"step": 500, "tokens_per_s": 1000.0, "probe_tokens_per_s": 236000.0}
    assert watch.update(1_000, 100.0, 900) is None  # once
    assert SlowWatch(None, 300, "cpu").update(1.0, 1000.0, 1) is None  # nothing measured: nothing to compare


def test_the_budget_keeps_the_final_evaluation_s_seconds_and_a_new_segment_starts_the_schedule_again():
    config = TrainConfig(time_budget=1.0, epochs=None, warmup_steps=10, lr=1e-2, min_lr_ratio=0.1).validate()
    schedule = Schedule(config, windows_per_epoch=1000)
    state = LoopState(step=500, elapsed_s=57.0)
    assert schedule.limit_reached(state) is None
    schedule.reserve_s = 4.0  # the final evaluation, measured at the checks, takes 4 s: stop at 56 s
    assert schedule.limit_reached(state) == "reached --time-budget 1 min"
    assert schedule.progress(state) == 1.0 and schedule.learning_rate(state) == pytest.approx(1e-3)
    new_segment(state, spent_s=2.0)  # resumed with --time-budget 1 again: 2 s of it spent preparing
    assert (state.segment_s, state.segment_step, state.elapsed_s) == (57.0, 500, 59.0)
    assert schedule.limit_reached(state) is None
    assert schedule.learning_rate(state) == pytest.approx(1e-3)  # warming up again: step 1 of 10
    state.step = 510
    cosine = 0.5 * (1 + math.cos(math.pi * 2 / 56))  # 2 s into the new segment's 56 s
    assert schedule.learning_rate(state) == pytest.approx(1e-2 * (0.1 + 0.9 * cosine))
    assert schedule.reserve_s <= 0.5 * 60  # never more than half a budget
    schedule.reserve_s = 1000.0
    assert schedule.budget_s() == 30.0


def test_time_spent_line():
    spent = TimeSpent(prepare=3.2, probe=8.9, train=270.0, checks=12.0, final=5.5, save=0.4)
    assert spent.line(5) == ("time: 300.0 s of a 300 s budget (+0%): prepare 3.2 s, probe 8.9 s, train 270.0 s, "
                             "checks 12.0 s, final evaluation 5.5 s, save 0.4 s")
    assert spent.record()["probe"] == 8.9


def test_a_run_says_where_its_time_went_and_ends_near_its_budget(tmp_path, dialogue_file, capsys):
    out = tmp_path / "run"
    assert main(["train", str(dialogue_file), "--size", "fixed", "--time-budget", "0.25", "--hidden-size", "16",
                 "--embedding-size", "8", "--eval-every", "10", "--eval-tokens", "500", "--out", str(out),
                 "--quiet"]) == 0
    time_line = [line for line in capsys.readouterr().out.splitlines() if line.startswith("time: ")]
    spent = json.loads((out / "config.json").read_text())["metrics"]["time_s"]
    assert set(spent) == {"prepare", "probe", "train", "checks", "final", "save"}
    assert len(time_line) == 1 and "of a 15 s budget" in time_line[0]
    # the loop stopped early enough for the final evaluation (a loaded machine may stall a step or two)
    assert spent["checks"] > 0 and 0.8 * 15 <= sum(spent.values()) <= 15 * 1.05 + 1.5


def test_a_finished_run_trains_again_with_a_new_budget_or_says_what_to_do(tmp_path, dialogue_file, capsys):
    out = tmp_path / "run"
    settings = dict(TINY_TRAIN, time_budget=0.05, size="fixed")
    first = scriptrnn.train(dialogue_file, out, **settings)
    assert first.stopped_because.startswith("reached --time-budget")
    capsys.readouterr()  # the first run's check lines
    # without a new budget there is nothing to train: said in one line (not a failure: the same command with
    # --resume may be run again by a crash-recovery script), never a silent re-evaluation
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nothing to train" in err and f"--resume {out} --time-budget 3" in err
    # --time-budget on resume: a new segment of that many minutes, which trains (and may change --cooldown-checks)
    # (no early stop either: a tiny model can plateau within the segment, and the segment's budget is under test)
    again = scriptrnn.train(out=out, resume=True, time_budget=0.15, cooldown_checks=0, patience=1000, progress=False)
    assert again.steps > first.steps and again.stopped_because.startswith("reached --time-budget")
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["cooldown_checks"] == 0 and config["metrics"]["steps"] == again.steps
    lrs = [r["lr"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "lr" in r]
    assert max(lrs[-5:]) < max(lrs)  # the new segment cooled down to its floor again


def test_an_interrupted_run_resumes_as_before(tmp_path, dialogue_file):
    def stop_at_20(event, trainer):
        if event == "on_step" and trainer.state.step == 20:
            trainer.stop_requested = "test"

    out = tmp_path / "run"
    scriptrnn.train(dialogue_file, out, callbacks=[stop_at_20], **dict(TINY_TRAIN, max_steps=30))
    assert scriptrnn.train(out=out, resume=True, progress=False).steps == 30
    with pytest.raises(NothingToTrain, match="nothing to train.*larger --max-steps"):
        scriptrnn.train(out=out, resume=True, progress=False)
