"""The cool-down: under --time-budget, the first check that fails to beat the best cools the learning
rate to its floor over --cooldown-checks checks, and the run ends (TrainConfig.cooldown_checks)."""

import numpy as np
import pytest

from scriptrnn.cli import main
from scriptrnn.model.network import ModelConfig, RNNLanguageModel
from scriptrnn.training.config import TrainConfig
from scriptrnn.training.loop import Trainer
from scriptrnn.training.reporting import ProgressBar
from scriptrnn.training.resume import LoopState, _loop_state


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


def test_the_first_check_without_a_new_best_cools_the_rate_to_its_floor_and_ends_the_run(tmp_path):
    trainer = _trainer(tmp_path, cooldown_checks=2)
    _checks(trainer, [3.0, 2.5])
    assert trainer.state.cooldown_from_step == -1 and trainer._should_stop() is None  # still improving
    before = trainer.learning_rate()
    _checks(trainer, [2.6])  # worse than 2.5: the cool-down starts here, at step 30
    s = trainer.state
    assert (s.cooldown_from_step, s.cooldown_from_lr) == (30, pytest.approx(before, rel=0.05))
    s.step = 40  # halfway through its 2 checks (20 steps)
    assert trainer.learning_rate() == pytest.approx((s.cooldown_from_lr + 1e-3) / 2)
    assert trainer._should_stop() is None
    s.step = 50
    assert trainer.learning_rate() == pytest.approx(1e-3)  # the floor: lr x min_lr_ratio
    assert trainer._should_stop().startswith("cooled down: validation stopped improving at step 30")


def test_no_cool_down_when_off_without_a_time_budget_or_past_half_of_it(tmp_path):
    for settings in ({"cooldown_checks": 0}, {"time_budget": None, "epochs": 5.0}):
        trainer = _trainer(tmp_path, **settings)
        _checks(trainer, [3.0, 3.1, 3.2])
        assert trainer.state.cooldown_from_step == -1 and trainer._should_stop() is None
    trainer = _trainer(tmp_path, time_budget=1.0)
    trainer.state.elapsed_s = 31.0  # past half of the minute: the cosine is cooling the rate already
    _checks(trainer, [3.0, 3.1])
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
