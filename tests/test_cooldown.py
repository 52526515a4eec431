"""The cool-down: under --time-budget, once COOLDOWN_EVIDENCE_CHECKS checks in a row fail to beat the best
(evidence that the text is used up, not one noisy check), the learning rate cools to its floor over
--cooldown-checks checks and the run ends (TrainConfig.cooldown_checks, training/schedule.py)."""

import numpy as np
import pytest

from scriptrnn.cli import main
from scriptrnn.model.network import ModelConfig, RNNLanguageModel
from scriptrnn.training.config import TrainConfig
from scriptrnn.training.loop import Trainer
from scriptrnn.training.reporting import ProgressBar
from scriptrnn.training.resume import LoopState, _loop_state
from scriptrnn.training.schedule import COOLDOWN_EVIDENCE_CHECKS


def _trainer(tmp_path, **settings) -> Trainer:
    model = RNNLanguageModel(ModelConfig(vocab_size=20, hidden_size=8, embedding_size=8))
    ids = np.arange(2000) % 20
    config = TrainConfig(**{"batch_size": 2, "seq_len": 4, "eval_every": 10, "warmup_steps": 0, "lr": 1e-2,
                            "min_lr_ratio": 0.1, "time_budget": 60.0, "epochs": None, **settings}).validate()
    return Trainer(model, ids, ids[:100], config, tmp_path, level="char", progress=False)


def _checks(trainer: Trainer, losses: list[float]) -> None:
    """A validation check every eval_every steps that scores each of ``losses`` in turn."""
    class Log:  # metrics.jsonl's part that _check uses: the records, which the loss curve is drawn from
        records: list = [{"step": 0, "train_loss": 3.2}]

        def append(self, record):
            self.records.append(record)

    for loss in losses:
        trainer.state.step += trainer.config.eval_every
        trainer._validation_loss = lambda tokens, loss=loss: (loss, 100)
        trainer._check(Log(), ProgressBar(False))


def test_checks_without_a_new_best_cool_the_rate_to_its_floor_and_end_the_run(tmp_path):
    assert COOLDOWN_EVIDENCE_CHECKS == 3
    trainer = _trainer(tmp_path, cooldown_checks=2)
    _checks(trainer, [3.0, 2.5])
    assert trainer.state.cooldown_from_step == -1 and trainer._should_stop() is None  # still improving
    _checks(trainer, [2.6, 2.55])  # two checks worse than 2.5: noise, or the text used up? Not yet known
    assert trainer.state.cooldown_from_step == -1
    before = trainer.learning_rate()
    _checks(trainer, [2.7])  # the third: the best of the last three fails to beat the best before them
    s = trainer.state
    assert (s.cooldown_from_step, s.cooldown_from_lr) == (50, pytest.approx(before, rel=0.05))
    s.step = 60  # halfway through its 2 checks (20 steps)
    assert trainer.learning_rate() == pytest.approx((s.cooldown_from_lr + 1e-3) / 2)
    assert trainer._should_stop() is None
    s.step = 70
    assert trainer.learning_rate() == pytest.approx(1e-3)  # the floor: lr x min_lr_ratio
    assert trainer._should_stop().startswith("cooled down: validation stopped improving (no new best in 3 checks) "
                                             "at step 50")


def test_one_worse_check_then_a_better_one_does_not_cool(tmp_path):
    # the word-level run of issue 25: a worse check, then the checks after it improved again
    trainer = _trainer(tmp_path, cooldown_checks=2)
    _checks(trainer, [3.9, 3.85, 3.836, 3.84, 3.811, 3.85, 3.80])
    assert trainer.state.cooldown_from_step == -1 and trainer._should_stop() is None


def test_no_cool_down_when_off_without_a_time_budget_or_past_half_of_it(tmp_path):
    for settings in ({"cooldown_checks": 0}, {"time_budget": None, "epochs": 5.0}):
        trainer = _trainer(tmp_path, **settings)
        _checks(trainer, [3.0, 3.1, 3.2, 3.3])
        assert trainer.state.cooldown_from_step == -1 and trainer._should_stop() is None
    trainer = _trainer(tmp_path, time_budget=1.0)
    trainer.state.elapsed_s = 31.0  # past half of the minute: the cosine is cooling the rate already
    _checks(trainer, [3.0, 3.1, 3.2, 3.3])
    assert trainer.state.cooldown_from_step == -1


def test_a_resume_point_from_before_the_cool_down_loads(tmp_path):
    old = {k: v for k, v in vars(LoopState(step=10)).items() if not k.startswith("cooldown")}
    assert _loop_state(old, windows_per_epoch=100).cooldown_from_step == -1
    with pytest.raises(ValueError, match="cool-down"):
        _loop_state({**old, "cooldown_from_step": -5}, windows_per_epoch=100)


def test_a_bad_cooldown_is_one_line(tmp_path, dialogue_file, capsys):
    assert main(["train", str(dialogue_file), "--time-budget", "1", "--cooldown-checks", "-1",
                 "--out", str(tmp_path / "run")]) != 0
    err = capsys.readouterr().err
    assert "--cooldown-checks must be a whole number >= 0" in err and "Traceback" not in err
