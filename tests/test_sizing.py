"""--size auto (training/sizing.py): the rule on made-up speeds, which sizes it may choose, and a real run."""

import json
import math
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch

import scriptrnn
from scriptrnn.cli import main
from scriptrnn.errors import ScriptRNNError
from scriptrnn.model.network import ModelConfig
from scriptrnn.training import load, probe, sizing
from scriptrnn.training.config import TrainConfig, level_defaults, run_limits
from scriptrnn.training.probe import Candidate, Measured, rule_parameters
from scriptrnn.training.sizing import LADDERS, Choice

from .conftest import TINY_TRAIN

CHAR = {c.name: c for c in LADDERS["char"]}


def _measured(speeds: dict) -> list[Measured]:
    """Made-up speeds (tokens/s) for char-level ladder sizes, with their real parameter counts."""
    out = []
    for name, speed in speeds.items():
        c = CHAR[name]
        n = rule_parameters(ModelConfig(vocab_size=80, num_layers=c.num_layers, hidden_size=c.hidden_size))
        out.append(Measured(c, n, speed, c.batch_size * c.seq_len / speed))
    return out


def test_rule_parameters_are_the_recurrent_layers():
    # The N of the rule's fit (training/config.py).
    assert rule_parameters(ModelConfig(vocab_size=80, hidden_size=256)) == 856_064
    assert rule_parameters(ModelConfig(vocab_size=80, hidden_size=512)) == 3_284_992


def _simple_rule(monkeypatch):
    """a = 0.1 nats per e-fold of parameters, b = 0.4 at 10M tokens, beta = 0.4: easy to follow by hand."""
    monkeypatch.setattr(sizing, "SIZING_LOSS_PER_E_FOLD", 0.1)
    monkeypatch.setattr(sizing, "SIZING_TOKEN_TERM", (0.4, 0.4))
    monkeypatch.setattr(sizing, "SIZING_ONE_LAYER_GAIN", 0.0)


def test_the_predicted_loss_falls_with_parameters_and_with_tokens(monkeypatch):
    _simple_rule(monkeypatch)
    assert sizing.predicted_loss(1e6, 1e7) == pytest.approx(0.4)  # the reference point: no parameter term
    assert sizing.predicted_loss(math.e * 1e6, 1e7) == pytest.approx(0.3)  # an e-fold more weights: -a
    assert sizing.predicted_loss(1e6, 1e7 * 2 ** 2.5) == pytest.approx(0.2)  # 2^2.5 more tokens: b halves
    monkeypatch.setattr(sizing, "SIZING_ONE_LAYER_GAIN", 0.05)
    assert sizing.predicted_loss(1e6, 1e7, layers=1) == pytest.approx(0.35)  # one layer: g below
    assert sizing.predicted_loss(1e6, 1e7, layers=3) == pytest.approx(0.4)


def test_the_rule_picks_the_lowest_predicted_loss_on_made_up_speeds(monkeypatch):
    _simple_rule(monkeypatch)
    fast = _measured({"1x128": 200_000, "2x256": 50_000, "2x384": 35_000, "2x512": 20_000})
    # 5 minutes, no validation: 1x128 (99k weights) sees 60M tokens: 0.231 + 0.195 = 0.426; 2x256 (856k)
    # 15M: 0.016 + 0.340 = 0.356; 2x384 (1.87M) 10.5M: -0.063 + 0.392 = 0.329; 2x512 (3.28M) 6M:
    # -0.119 + 0.491 = 0.372. 2x384 is lowest, and 2x256 the next.
    choice = sizing.choose(fast, 300, eval_every=200, eval_tokens=0)
    assert choice.measured.candidate.name == "2x384" and choice.runner_up.measured.candidate.name == "2x256"
    assert choice.tokens == pytest.approx(35_000 * 300) and choice.ratio == pytest.approx(35_000 * 300 / 1_873_920)
    assert choice.loss == pytest.approx(sizing.predicted_loss(1_873_920, 35_000 * 300, layers=2))
    assert sizing.choose(fast, 300, eval_every=200, eval_tokens=0) == choice  # pure: same speeds, same choice
    # A machine 4x slower (fp32, one thread) gets a smaller model for the same budget...
    slow = _measured({m.candidate.name: m.tokens_per_s / 4 for m in fast})
    assert sizing.choose(slow, 300, eval_every=200, eval_tokens=0).measured.candidate.name == "1x128"
    # ...and so does a shorter budget on the fast one: the rule sees the tokens, not the minutes.
    assert sizing.choose(fast, 75, eval_every=200, eval_tokens=0).measured.candidate.name == "1x128"


def test_validation_checks_take_their_share_of_the_budget():
    c = CHAR["2x256"]  # 8,192 tokens a step: 200 steps = 1,638,400 training tokens between checks
    assert sizing.training_seconds(300, c, 200, 0) == 300
    assert sizing.training_seconds(300, c, 200, 250_000) == pytest.approx(300 / (1 + 250_000 / 3 / 1_638_400))


def test_the_line_says_what_was_chosen_and_why():
    m, other = _measured({"2x384": 41_000, "2x256": 70_000})
    line = sizing.reason(Choice(m, 12_000_000, 6.4, 0.30, Choice(other, 20_000_000, 23.4, 0.3125)), "bf16", 5)
    assert line == ("sizing: 2x384 (batch 64, window 128): 41k tokens/s measured here in bf16, "
                    "~12M tokens in 5 min = 6.4 per parameter (1.87M): the lowest predicted held-out loss; "
                    "next best 2x256, +0.013 predicted")


def test_given_sizes_are_written_into_every_candidate():
    ladder = sizing.candidates("char", {"hidden_size": 300, "seq_len": 50})
    assert {(c.hidden_size, c.seq_len) for c in ladder} == {(300, 50)}
    assert len(ladder) == len(set(ladder)) == 4  # 1, 2 and 3 layers at batch 64; 2 layers at batch 128
    assert sizing.candidates("char", {"num_layers": 1, "hidden_size": 8, "batch_size": 4, "seq_len": 4}) == \
        [Candidate(1, 8, 4, 4)]
    assert sizing.candidates("word", {})[0] == Candidate(1, 128, 32, 64)


def test_candidates_fit_the_processes_and_the_corpus():
    assert sizing.candidates("char", {}, processes=3) == []  # no ladder batch splits over 3 processes
    assert all(c.batch_size == 64 for c in sizing.candidates("char", {}, corpus_tokens=12_000))


def _fake_machine(monkeypatch, seconds, load=lambda t: 1.0) -> list[float]:
    """A made-up machine: a step of candidate c takes ``seconds(c)`` times ``load(now)`` on a fake clock
    (returned: [now]); no model is built."""
    now = [0.0]

    def step(self, trial):
        took = seconds(trial) * load(now[0])
        now[0] += took
        return took

    monkeypatch.setattr(probe._Trial, "start", staticmethod(lambda config, c, *rest: c))
    monkeypatch.setattr(probe.Probe, "_step", step)
    return now


def _run(now=None) -> probe.Probe:
    clock = (lambda: now[0]) if now is not None else probe.Probe.clock
    return probe.Probe(ModelConfig(vocab_size=80), torch.device("cpu"), None, TrainConfig(), clock=clock)


def _losses(seconds_left_fixed=None):
    def losses(measured, seconds_left):
        return [sizing.predict(m, seconds_left_fixed or seconds_left, eval_every=200, eval_tokens=0).loss
                for m in measured]
    return losses


def _step_seconds(c: Candidate) -> float:
    """A plausible step: a fixed cost plus the arithmetic (2x512 ~0.33 s a step, 1x128 ~0.03 s)."""
    n = rule_parameters(ModelConfig(vocab_size=80, num_layers=c.num_layers, hidden_size=c.hidden_size))
    return 0.02 + 1e-10 * n * c.batch_size * c.seq_len


def test_the_probe_stops_once_bigger_sizes_could_not_be_chosen(monkeypatch):
    _simple_rule(monkeypatch)
    speeds = {"1x128": 100_000, "2x128": 60_000, "2x256": 2_000, "2x384": 1_500}
    now = _fake_machine(monkeypatch, lambda c: c.batch_size * c.seq_len / speeds[c.name])
    warmed = []
    warm_up = probe.Probe.warm_up
    monkeypatch.setattr(probe.Probe, "warm_up", lambda self, c: (warmed.append(c.name), warm_up(self, c)))
    ladder = [CHAR[name] for name in speeds]
    # 2x128 predicts 0.463 (18M tokens in 5 min); 2x256 at 2k tokens/s sees 0.6M: 1.248, more than
    # PAST_BEST worse, and bigger sizes would see fewer tokens still: 2x384 is never timed.
    measured, _ = probe.probe(ladder, _run(now), 300, _losses(), sizing.PAST_BEST)
    assert warmed == ["1x128", "2x128", "2x256"] and len(measured) == 3


def test_sizes_the_probe_has_no_time_for_get_a_scaled_speed_and_can_be_chosen(monkeypatch):
    _simple_rule(monkeypatch)
    monkeypatch.setattr(sizing, "SIZING_LOSS_PER_E_FOLD", 0.3)  # weights count for more: bigger sizes are wanted
    now = _fake_machine(monkeypatch, lambda c: {"1x128": 0.05, "2x128": 0.08}.get(c.name) or pytest.fail(c.name))
    ladder = [CHAR[n] for n in ("1x128", "2x128", "2x256", "2x384", "2x512", "3x512", "2x768")]
    # A 1-minute budget's share is 1.8 s: 1x128 and 2x128 fit with their rounds, 2x256 (~0.3 s a step) not.
    measured, probe_s = probe.probe(ladder, _run(now), 60, _losses(), sizing.PAST_BEST)
    # 1x128 predicts far worse than 2x128 after one step: only 2x128 is in play, and timed in every round
    assert [m.estimated_from for m in measured[:2]] == [None, None] and measured[1].steps_timed == probe.ROUNDS
    assert probe_s <= 0.05 + 1.8  # the first warm-up step, then the share, every second counted
    estimated = measured[2:]
    assert estimated and {m.estimated_from for m in estimated} == {"2x128"}
    assert [m.tokens_per_s for m in estimated] == sorted([m.tokens_per_s for m in estimated], reverse=True)
    choice = sizing.choose(measured, 60 - probe_s, eval_every=200, eval_tokens=0)
    assert choice.measured.candidate.name == "2x256" and choice.measured.estimated_from == "2x128"
    assert "estimated from 2x128's speed" in sizing.reason(choice, "bf16", 1)


def _choice_under(monkeypatch, load) -> tuple[str, list[Measured], float]:
    now = _fake_machine(monkeypatch, _step_seconds, load)
    ladder = [CHAR[n] for n in ("1x128", "2x128", "2x256", "2x384", "2x512")]
    measured, probe_s = probe.probe(ladder, _run(now), 300, _losses(), sizing.PAST_BEST)
    return sizing.choose(measured, 300 - probe_s, eval_every=200, eval_tokens=0).measured.candidate.name, \
        measured, probe_s


def test_a_burst_of_load_on_one_size_does_not_change_the_choice(monkeypatch):
    _simple_rule(monkeypatch)
    quiet, measured, probe_s = _choice_under(monkeypatch, lambda t: 1.0)
    assert probe_s <= 9.0 + 0.03  # 3% of 5 minutes, and the first (uncharged) warm-up step
    # The test can fail: any one size measured 3x slow (what a size timed alone during a burst gets) changes it.
    changed = [m.candidate.name for m in measured
               if sizing.choose([replace(x, tokens_per_s=x.tokens_per_s / 3) if x is m else x for x in measured],
                                300 - probe_s, eval_every=200, eval_tokens=0).measured.candidate.name != quiet]
    assert quiet in changed
    longest = max(_step_seconds(m.candidate) for m in measured)
    for start in [i * 0.05 for i in range(int(probe_s / 0.05))]:  # a burst 3x slow, one long step long, anywhere
        chosen, _, took = _choice_under(monkeypatch, lambda t: 3.0 if start <= t < start + longest else 1.0)
        assert chosen == quiet, f"a burst at {start:.2f} s chose {chosen}, not {quiet}"
        assert took <= 9.0 + 3 * longest  # within the share, give or take the step that crosses its end


def test_a_smaller_size_cannot_be_slower_than_a_bigger_one(monkeypatch):
    # 1x128 slow in every step the probe gives it (steady load while it runs): timed again, then capped
    now = _fake_machine(monkeypatch, lambda c: 0.5 if c.name == "1x128" else _step_seconds(c))
    ladder = [CHAR[n] for n in ("1x128", "2x128")]
    measured, _ = probe.probe(ladder, _run(now), 600, _losses(), 10.0)
    small, big = measured
    assert small.capped_by == "2x128" and small.step_s == big.step_s
    assert small.steps_timed > probe.ROUNDS  # timed again before falling back


def test_the_probe_keeps_to_its_share_with_a_real_busy_process(monkeypatch):
    """Another process burning a core during the whole probe of tiny real models."""
    warm_ups = []
    warm_up = probe.Probe.warm_up

    def timed_warm_up(self, c):
        began = time.perf_counter()
        warm_up(self, c)
        warm_ups.append(time.perf_counter() - began)

    monkeypatch.setattr(probe.Probe, "warm_up", timed_warm_up)
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        run = probe.Probe(ModelConfig(vocab_size=40, hidden_size=16, embedding_size=8), torch.device("cpu"), None,
                          TrainConfig())
        ladder = sizing.candidates("char", {"hidden_size": 16, "batch_size": 8, "seq_len": 16})
        measured, probe_s = probe.probe(ladder, run, 60, _losses(), sizing.PAST_BEST)
    finally:
        burner.kill()
        burner.wait()
    # The share is 1.8 s; not charged to it: the first warm-up step (the process's first step: seconds), and
    # the step that crosses the share's end (a step is not cut short; on a loaded machine one can stall).
    longest_step = max(max(steps) for steps in run._times.values() if steps)
    assert probe_s <= warm_ups[0] + 1.8 + longest_step
    timed = [m for m in measured if not m.estimated_from]
    assert timed[0].steps_timed >= probe.MIN_ROUNDS
    costs = [run.cost(m.candidate) for m in timed]
    by_cost = [m.step_s for _, m in sorted(zip(costs, timed), key=lambda pair: pair[0])]
    assert by_cost == sorted(by_cost)  # no bigger size faster a step than a smaller one
    assert all(m.tokens_per_s > 0 and math.isfinite(m.tokens_per_s) for m in measured)


def test_runs_limited_by_steps_or_epochs_or_without_a_budget_keep_their_sizes():
    timed = TrainConfig(time_budget=5)
    assert sizing.fixed_because(timed, {}) is None
    assert "--max-steps" in sizing.fixed_because(TrainConfig(time_budget=5, max_steps=10), {"max_steps": 10})
    assert "--epochs" in sizing.fixed_because(TrainConfig(time_budget=5), {"epochs": 2.0})
    assert "--time-budget" in sizing.fixed_because(TrainConfig(), {})
    every = dict(num_layers=1, hidden_size=8, batch_size=4, seq_len=4)
    assert "every size" in sizing.fixed_because(timed, every)
    # auto as the char default, not asked for: one size given means the user chooses the shape
    assert "a size was given" in sizing.fixed_because(timed, {"hidden_size": 256})
    assert sizing.fixed_because(timed, {"hidden_size": 256, "size": "auto"}) is None
    assert "parent" in sizing.fixed_because(timed, {}, fine_tuning=True)


def test_char_runs_under_a_budget_are_sized_by_default_and_quiet_when_not(monkeypatch):
    assert level_defaults("char")["size"] == "auto" and level_defaults("word")["size"] == "fixed"
    said = []
    _, _, record = sizing.auto_size({"hidden_size": 40}, TrainConfig(size="auto"), {}, 80, corpus_tokens=100_000,
                                    device=torch.device("cpu"), say=said.append)
    assert said == [] and "no --time-budget" in record["reason"]  # the default's fixed run prints nothing


def test_given_flags_win_and_only_the_others_are_chosen(monkeypatch):
    # every size equally fast in tokens/s, on a text too long to reread: the one with the most weights
    # predicts the lowest loss
    _fake_machine(monkeypatch, lambda c: c.batch_size * c.seq_len / 1e9)
    train = TrainConfig(time_budget=5, size="auto", epochs=None)  # no epochs: no cap on the tokens seen
    said = []
    asked = {"hidden_size": 40, "size": "auto"}  # --size auto asked for: a given size stays, the others are chosen
    model, chosen, record = sizing.auto_size({"hidden_size": 40, "embedding_size": 8}, train, asked,
                                             80, corpus_tokens=10**9, device=torch.device("cpu"), say=said.append)
    assert model["hidden_size"] == 40  # given
    assert (model["num_layers"], chosen.batch_size, chosen.seq_len) == (3, 64, 128)  # chosen: the most weights
    assert record["choice"] == {"num_layers": 3, "hidden_size": 40, "batch_size": 64, "seq_len": 128}
    assert said == [record["reason"]] and said[0].startswith("sizing: 3x40 (batch 64, window 128)")
    assert {m["name"] for m in record["measured"]} >= {"1x40", "2x40", "3x40"}


def test_a_run_that_will_read_its_text_many_times_gets_weight_drop_unless_given(monkeypatch):
    _fake_machine(monkeypatch, lambda c: c.batch_size * c.seq_len / 1e6)  # every size at 1M tokens/s
    train = TrainConfig(time_budget=5, size="auto", epochs=None)
    base = {"hidden_size": 40, "embedding_size": 8}

    def sized(corpus_tokens, asked=None, **settings):
        said = []
        model, _, _ = sizing.auto_size({**base, **settings}, train, {"size": "auto", **(asked or {})}, 80,
                                       corpus_tokens=corpus_tokens, device=torch.device("cpu"), say=said.append)
        return model.get("weight_drop"), said[0]

    # 1M tokens/s for ~5 minutes: ~290M tokens, hundreds of passes over 1M, a fraction of one over 1G
    drop, line = sized(1_000_000)
    assert drop == 0.2 and "weight drop 0.2, as it will read the text ~" in line
    assert line.endswith("(1M tokens/s with it)")  # the chosen size timed again with the step the run takes
    assert sized(10**9)[0] is None  # read once: no weight drop
    assert sized(1_000_000, {"weight_drop": 0.0}, weight_drop=0.0)[0] == 0.0  # --weight-drop 0 wins


def test_a_time_budget_drops_the_default_epoch_limit_but_not_a_given_one():
    assert run_limits({"time_budget": 2.0}) == {"time_budget": 2.0, "epochs": None}
    assert run_limits({"time_budget": 2.0, "epochs": 3.0})["epochs"] == 3.0  # both given: the first limit ends it
    assert run_limits({"max_steps": 10}) == {"max_steps": 10}  # no budget: the level's epochs stay


def test_size_is_checked():
    with pytest.raises(ScriptRNNError, match="--size must be one of auto, fixed"):
        TrainConfig(size="big").validate()


def test_a_steps_limited_run_is_not_probed(tmp_path, dialogue_file, monkeypatch):
    monkeypatch.setattr(probe.Probe, "warm_up", lambda *a, **k: pytest.fail("probed a steps-limited run"))
    settings = {**TINY_TRAIN, "hidden_size": 16}
    scriptrnn.train(dialogue_file, tmp_path / "run", size="auto", time_budget=1, max_steps=2, **settings)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["sizing"]["choice"] is None and "--max-steps" in config["sizing"]["reason"]
    assert (config["model"]["hidden_size"], config["training"]["batch_size"]) == (16, 8)


def test_a_real_tiny_run_sizes_itself_prints_the_line_and_keeps_it_on_resume(tmp_path, dialogue_file, capsys,
                                                                             monkeypatch):
    out = tmp_path / "run"
    code = main(["train", str(dialogue_file), "--size", "auto", "--time-budget", "0.05", "--hidden-size", "16",
                 "--embedding-size", "8", "--eval-every", "5", "--eval-tokens", "500", "--out", str(out), "--quiet"])
    assert code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("sizing:")]
    config = json.loads((out / "config.json").read_text())
    sized = config["sizing"]
    assert lines == [sized["reason"]] and sized["measured"] and sized["probe_s"] > 0
    picked = next(m for m in sized["measured"] if all(m[k] == v for k, v in sized["choice"].items()))
    # a 3-second budget leaves the probe time for few sizes: the others' speeds are estimated, and the line says so
    how = f"estimated from {picked['estimated_from']}'s speed" if picked["estimated_from"] else "measured"
    assert f"tokens/s {how} here" in lines[0]
    assert config["model"]["hidden_size"] == 16  # given
    chosen = (config["model"]["num_layers"], config["training"]["batch_size"], config["training"]["seq_len"])
    assert chosen == (sized["choice"]["num_layers"], sized["choice"]["batch_size"], sized["choice"]["seq_len"])
    assert config["metrics"]["elapsed_s"] >= sized["probe_s"]  # the probe counted against the budget
    assert config["training"]["epochs"] is None  # the budget is the limit: the default 20 epochs do not cut it
    # --resume never sizes again: the run's recorded sizes hold.
    monkeypatch.setattr(probe.Probe, "warm_up", lambda *a, **k: pytest.fail("probed on resume"))
    scriptrnn.train(out=out, resume=True, time_budget=0.1, progress=False)
    again = json.loads((out / "config.json").read_text())
    assert again["model"] == config["model"] and again["sizing"] == sized
    with pytest.raises(ScriptRNNError, match="--size fixed differs from the run.s auto"):
        scriptrnn.train(out=out, resume=True, size="fixed", progress=False)


def test_the_epochs_limit_caps_the_tokens_a_size_can_see(monkeypatch):
    _simple_rule(monkeypatch)
    fast = _measured({"1x128": 20_000_000, "2x128": 100_000})  # 1x128 would see 200x the tokens...
    assert sizing.choose(fast, 300, eval_every=200, eval_tokens=0).measured.candidate.name == "1x128"
    # ...but a corpus of 50,000 tokens seen 20 times caps both at 1M, and then the bigger one wins.
    choice = sizing.choose(fast, 300, eval_every=200, eval_tokens=0, max_tokens=1_000_000)
    assert choice.measured.candidate.name == "2x128" and choice.tokens == 1_000_000


def test_the_rule_knows_the_text_a_small_one_gets_a_smaller_model_than_a_large_one():
    """The same machine and budget: a 0.3 MB text reread 150 times is used up by a big model, a 5 MB one is not."""
    speeds = _measured({"1x128": 370_000, "2x128": 180_000, "2x256": 66_000, "2x384": 35_000, "2x512": 23_000})

    def chosen(unique_tokens):
        return sizing.choose(speeds, 300, eval_every=200, eval_tokens=0, unique_tokens=unique_tokens)

    small, large = chosen(270_000), chosen(4_500_000)
    assert small.measured.parameters < large.measured.parameters
    assert small.measured.candidate.name == "1x128" and large.measured.candidate.name in ("2x384", "2x512")
    # The rule's loss knows the rereading: the same tokens over a smaller text predict a worse loss...
    n = speeds[-1].parameters
    assert sizing.predicted_loss(n, 10e6, 2, 270_000) > sizing.predicted_loss(n, 10e6, 2, 4_500_000)
    # ...all the more for a bigger model, and not at all for a text read less than once.
    assert sizing.effective_tokens(10e6, n, 270_000) < sizing.effective_tokens(10e6, speeds[0].parameters, 270_000)
    assert sizing.effective_tokens(1e5, n, 10**9) == pytest.approx(1e5)
    # Weight drop rises with the share of the text used up: none for the large text, the most for the small.
    assert sizing.used_up_weight_drop(large.tokens, large.measured.parameters, 4_500_000) == 0
    assert sizing.used_up_weight_drop(small.tokens, small.measured.parameters, 270_000) == 0.2


def test_other_programs_on_the_runs_cores_are_measured_and_scaled_out():
    """A real process burning a core while this one computes: the kernel's count sees it."""
    watch = load.LoadWatch.start()
    if watch.busy0 is None:
        pytest.skip("no /proc/stat here")
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        a = torch.randn(256, 256)
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            a @ a
        others = watch.others()
    finally:
        burner.kill()
        burner.wait()
    assert others >= 0.3  # most of a core's worth, split with this process by the scheduler
    quiet = load.LoadWatch.start()
    time.sleep(1.1)
    assert quiet.others() < len(quiet.cores)  # at most every core
    assert load.slowdown(0.1, 2) == 1.0  # a quiet machine's background is left alone
    assert 1.0 < load.slowdown(0.5, 2) < load.slowdown(1.0, 2) <= load.MOST_SLOWDOWN
    assert load.slowdown(5.0, 2) == load.MOST_SLOWDOWN


def test_the_sizing_line_says_when_other_programs_slowed_the_probe(monkeypatch):
    _fake_machine(monkeypatch, lambda c: c.batch_size * c.seq_len / 1e6)
    # as a busy machine's kernel would count it: one of the run's two cores taken
    monkeypatch.setattr(load.LoadWatch, "others", lambda self, shortest=0: 1.0)
    monkeypatch.setattr(load.LoadWatch, "start", classmethod(lambda cls: cls([0, 1], 0.0, 0.0, 0.0)))
    threads_seen, warm_up = [], probe.Probe.warm_up
    monkeypatch.setattr(probe.Probe, "warm_up", lambda self, c: (threads_seen.append(torch.get_num_threads()),
                                                                  warm_up(self, c)))
    said = []
    train = TrainConfig(time_budget=5, size="auto", epochs=None)
    torch.set_num_threads(2)
    try:
        _, _, record = sizing.auto_size({"hidden_size": 40, "embedding_size": 8}, train, {"size": "auto"}, 80,
                                        corpus_tokens=10**9, device=torch.device("cpu"), say=said.append)
        assert torch.get_num_threads() == 2  # given back to the run
    finally:
        torch.set_num_threads(1)
    assert set(threads_seen) == {1}  # timed on the one core the other program left free
    assert "other programs took 1.0 of this run's 2 cores during the probe (timed with 1 of 2 threads)" in said[0]
    assert record["speeds_scaled_by"] == pytest.approx(2 ** load.THREAD_GAIN, abs=1e-3)
    assert record["busy_elsewhere_cores"] == 1.0
    assert load.free_threads(0.1, 2, 2) == 2 and load.free_threads(1.0, 2, 2) == 1 and load.free_threads(1.9, 2, 2) == 1
    assert load.slowdown(1.0, 2, 1) == 1.0 < load.slowdown(1.0, 2, 2)  # one thread on the free core: no contention


def test_a_gpu_ladder_goes_on_only_as_far_as_memory_allows(monkeypatch):
    """Off a GPU every size fits; on one, a size whose step would not fit, or that runs out of memory
    when built, ends the ladder there, and nothing bigger is estimated either."""
    small, big = CHAR["1x128"], sizing.GPU_RUNGS[-1]
    config = ModelConfig(vocab_size=80)
    assert probe.step_bytes(config, small, True) < probe.step_bytes(replace(config, num_layers=3, hidden_size=2048),
                                                                     big, True)
    assert _run().fits(big)  # the CPU: no memory check
    assert sizing.candidates("char", {}, gpu=True)[-len(sizing.GPU_RUNGS):] == list(sizing.GPU_RUNGS)
    assert not set(sizing.GPU_RUNGS) & set(sizing.candidates("char", {}))
    now = _fake_machine(monkeypatch, _step_seconds)
    fitting = {"1x128", "2x128", "2x256"}
    monkeypatch.setattr(probe.Probe, "fits", lambda self, c: c.name in fitting)
    ladder = sizing.candidates("char", {}, gpu=True)
    measured, _ = probe.probe(ladder, _run(now), 600, _losses(), 10.0)  # past_best 10: only memory stops it
    assert {m.candidate.name for m in measured} == fitting
    warm_up = probe.Probe.warm_up

    def out_of_memory(self, c):
        if c.name == "2x256":
            raise torch.OutOfMemoryError("CUDA out of memory (as a GPU would say)")
        warm_up(self, c)

    monkeypatch.setattr(probe.Probe, "fits", lambda self, c: True)
    monkeypatch.setattr(probe.Probe, "warm_up", out_of_memory)
    measured, _ = probe.probe(ladder, _run(now), 600, _losses(), 10.0)
    assert [m.candidate.name for m in measured] == ["1x128", "2x128"]
