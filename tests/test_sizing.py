"""--size auto (training/sizing.py): the rule on made-up speeds, which sizes it may choose, and a real run."""

import json

import pytest
import torch

import scriptrnn
from scriptrnn.cli import main
from scriptrnn.errors import ScriptRNNError
from scriptrnn.model.network import ModelConfig
from scriptrnn.training import sizing
from scriptrnn.training.config import TrainConfig, level_defaults
from scriptrnn.training.sizing import LADDERS, Candidate, Choice, Measured

from .conftest import TINY_TRAIN

CHAR = {c.name: c for c in LADDERS["char"]}


def _measured(speeds: dict) -> list[Measured]:
    """Made-up speeds (tokens/s) for char-level ladder sizes, with their real parameter counts."""
    out = []
    for name, speed in speeds.items():
        c = CHAR[name]
        n = sizing.rule_parameters(ModelConfig(vocab_size=80, num_layers=c.num_layers, hidden_size=c.hidden_size))
        out.append(Measured(c, n, speed, c.batch_size * c.seq_len / speed))
    return out


def test_rule_parameters_are_the_recurrent_layers():
    # The counts the provisional constant was derived from (training/config.py).
    assert sizing.rule_parameters(ModelConfig(vocab_size=80, hidden_size=256)) == 856_064
    assert sizing.rule_parameters(ModelConfig(vocab_size=80, hidden_size=512)) == 3_284_992


def test_the_rule_picks_the_size_nearest_the_target_on_made_up_speeds(monkeypatch):
    monkeypatch.setattr(sizing, "SIZING_TOKENS_PER_PARAMETER", 5.0)
    monkeypatch.setattr(sizing, "SIZING_SLOPE", 0.0)
    fast = _measured({"1x128": 200_000, "2x256": 50_000, "2x384": 30_000, "2x512": 20_000})
    # 5 minutes, no validation: 2x256 sees 15M tokens = 17.5 per parameter, 2x384 9M / 1.87M = 4.8,
    # 2x512 6M / 3.28M = 1.8: 2x384 is nearest 5.
    choice = sizing.choose(fast, 300, 5, eval_every=200, eval_tokens=0)
    assert choice.measured.candidate.name == "2x384"
    assert choice.ratio == pytest.approx(30_000 * 300 / 1_873_920)
    assert sizing.choose(fast, 300, 5, eval_every=200, eval_tokens=0) == choice  # pure: same speeds, same choice
    # A machine 4x slower (fp32, one thread) gets a smaller model for the same budget...
    slow = _measured({name: m.tokens_per_s / 4 for name, m in zip(["1x128", "2x256", "2x384", "2x512"], fast)})
    assert sizing.choose(slow, 300, 5, eval_every=200, eval_tokens=0).measured.candidate.name == "2x256"
    # ...and so does a shorter budget on the fast one.
    assert sizing.choose(fast, 60, 1, eval_every=200, eval_tokens=0).measured.candidate.name == "2x256"


def test_the_target_follows_the_budget_through_the_slope(monkeypatch):
    monkeypatch.setattr(sizing, "SIZING_TOKENS_PER_PARAMETER", 5.0)
    monkeypatch.setattr(sizing, "SIZING_SLOPE", -0.5)
    monkeypatch.setattr(sizing, "SIZING_MEASURED_UP_TO", 5.0)
    assert sizing.target_ratio(5) == pytest.approx(5.0)
    assert sizing.target_ratio(1.25) == pytest.approx(10.0)
    assert sizing.target_ratio(60) == pytest.approx(5.0)  # past the budgets measured, the slope stops


def test_validation_checks_take_their_share_of_the_budget():
    c = CHAR["2x256"]  # 8,192 tokens a step: 200 steps = 1,638,400 training tokens between checks
    assert sizing.training_seconds(300, c, 200, 0) == 300
    assert sizing.training_seconds(300, c, 200, 250_000) == pytest.approx(300 / (1 + 250_000 / 3 / 1_638_400))


def test_the_line_says_what_was_chosen_and_why():
    m = _measured({"2x384": 41_000})[0]
    line = sizing.reason(Choice(m, 12_000_000, 9.8, 10.0), "bf16", 5)
    assert line == ("sizing: 2x384 (batch 64, window 128): 41k tokens/s measured here in bf16, "
                    "~12M tokens in 5 min = 9.8 per parameter (1.87M), target 10")


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


def test_the_probe_stops_once_bigger_sizes_could_not_be_chosen(monkeypatch):
    monkeypatch.setattr(sizing, "SIZING_TOKENS_PER_PARAMETER", 5.0)
    monkeypatch.setattr(sizing, "SIZING_SLOPE", 0.0)
    speeds = {"1x128": 100_000, "2x128": 60_000, "2x256": 2_000, "2x384": 1_500}
    timed = []

    def fake_steps(self, c, enough_s=1.0):
        timed.append(c.name)
        return _measured({c.name: speeds[c.name]})[0]

    monkeypatch.setattr(sizing.Probe, "time_steps", fake_steps)
    run = sizing.Probe(ModelConfig(vocab_size=80), torch.device("cpu"), None, 3e-3)
    ladder = [CHAR[name] for name in speeds]
    # 2x256 at 2k tokens/s sees 0.6M tokens in 5 min: 0.7 per parameter, below 5 / 4; 2x384 is never timed.
    measured, _ = sizing.probe(ladder, run, 300, eval_every=200, eval_tokens=0)
    assert timed == ["1x128", "2x128", "2x256"] and len(measured) == 3


def test_sizes_the_probe_has_no_time_for_get_a_scaled_speed_and_can_be_chosen(monkeypatch):
    monkeypatch.setattr(sizing, "SIZING_TOKENS_PER_PARAMETER", 5.0)
    monkeypatch.setattr(sizing, "SIZING_SLOPE", 0.0)
    now = [0.0]
    speeds = {"1x128": 200_000, "2x128": 120_000}

    def fake_steps(self, c, enough_s=1.0):  # each timed size takes 0.8 s of a 1-minute budget's 1.8 s share
        now[0] += 0.8
        return _measured({c.name: speeds[c.name]})[0]

    monkeypatch.setattr(sizing.Probe, "time_steps", fake_steps)
    run = sizing.Probe(ModelConfig(vocab_size=80), torch.device("cpu"), None, 3e-3, clock=lambda: now[0])
    ladder = [CHAR[n] for n in ("1x128", "2x128", "2x256", "2x384", "2x512", "3x512")]
    measured, probe_s = sizing.probe(ladder, run, 60, eval_every=200, eval_tokens=0)
    assert [m.estimated_from for m in measured[:2]] == [None, None] and probe_s == pytest.approx(1.6)
    assert measured[2].candidate.name == "2x256" and measured[2].estimated_from == "2x128"
    assert measured[2].tokens_per_s < speeds["2x128"]  # bigger, so slower
    assert len(measured) < len(ladder)  # the estimates stop once bigger sizes could not be chosen
    # 2x128 would see 120k x 58 s = 7M tokens, 29 per parameter: an estimated size is nearer 5
    choice = sizing.choose(measured, 60 - probe_s, 1, eval_every=200, eval_tokens=0)
    assert choice.measured.estimated_from == "2x128"
    assert "estimated from 2x128's speed" in sizing.reason(choice, "bf16", 1)


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
    monkeypatch.setattr(sizing.Probe, "time_steps",
                        lambda self, c, enough_s=1.0: Measured(c, 1000, 1e9 / c.num_layers, 1e-3))
    train = TrainConfig(time_budget=5, size="auto", epochs=None)  # no epochs: no cap on the tokens seen
    said = []
    asked = {"hidden_size": 40, "size": "auto"}  # --size auto asked for: a given size stays, the others are chosen
    model, chosen, record = sizing.auto_size({"hidden_size": 40, "embedding_size": 8}, train, asked,
                                             80, corpus_tokens=100_000, device=torch.device("cpu"), say=said.append)
    assert model["hidden_size"] == 40  # given
    assert (model["num_layers"], chosen.batch_size, chosen.seq_len) == (3, 64, 128)  # chosen: most tokens needed
    assert record["choice"] == {"num_layers": 3, "hidden_size": 40, "batch_size": 64, "seq_len": 128}
    assert said == [record["reason"]] and said[0].startswith("sizing: 3x40 (batch 64, window 128)")
    assert {m["name"] for m in record["measured"]} >= {"1x40", "2x40", "3x40"}


def test_size_is_checked():
    with pytest.raises(ScriptRNNError, match="--size must be one of auto, fixed"):
        TrainConfig(size="big").validate()


def test_a_steps_limited_run_is_not_probed(tmp_path, dialogue_file, monkeypatch):
    monkeypatch.setattr(sizing.Probe, "time_steps", lambda *a, **k: pytest.fail("probed a steps-limited run"))
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
    # --resume never sizes again: the run's recorded sizes hold.
    monkeypatch.setattr(sizing.Probe, "time_steps", lambda *a, **k: pytest.fail("probed on resume"))
    scriptrnn.train(out=out, resume=True, time_budget=0.1, progress=False)
    again = json.loads((out / "config.json").read_text())
    assert again["model"] == config["model"] and again["sizing"] == sized
    with pytest.raises(ScriptRNNError, match="--size fixed differs from the run.s auto"):
        scriptrnn.train(out=out, resume=True, size="fixed", progress=False)


def test_the_epochs_limit_caps_the_tokens_a_size_can_see(monkeypatch):
    monkeypatch.setattr(sizing, "SIZING_TOKENS_PER_PARAMETER", 5.0)
    monkeypatch.setattr(sizing, "SIZING_SLOPE", 0.0)
    fast = _measured({"1x128": 2_000_000, "2x128": 1_000_000})  # far too many tokens for both...
    # ...but a corpus of 50,000 tokens seen 20 times caps them at 1M: 1x128 (99k parameters) would see 10.1
    # per parameter, 2x128 (231k) 4.3, nearer 5.
    choice = sizing.choose(fast, 300, 5, eval_every=200, eval_tokens=0, max_tokens=1_000_000)
    assert choice.measured.candidate.name == "2x128" and choice.tokens == 1_000_000
