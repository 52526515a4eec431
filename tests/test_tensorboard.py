"""--tensorboard: real event files from a real run, read back with TensorBoard's own reader."""

import json

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import scriptrnn
from scriptrnn.cli import main
from scriptrnn.training.reporting import TensorBoardLogger

from .conftest import TINY_TRAIN


def read_scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_train_flag_writes_the_metrics_as_scalars(tmp_path, dialogue_file):
    out, tb = tmp_path / "run", tmp_path / "tb"
    code = main(["train", str(dialogue_file), "--out", str(out), "--max-steps", "40", "--eval-every", "20",
                 "--hidden-size", "16", "--layers", "1", "--seq-len", "16", "--batch-size", "8", "--quiet",
                 "--tensorboard", str(tb)])
    assert code == 0
    assert list(tb.glob("events.out.tfevents.*"))
    scalars = read_scalars(tb)
    assert set(scalars) == {"train/loss", "train/lr", "train/tokens_per_s", "validation/loss",
                            "validation/bits_per_char"}
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # The same numbers as metrics.jsonl, at the same steps (float32 in the event file).
    want = [(r["step"], r["val_loss"]) for r in logged if "val_loss" in r]
    assert [s for s, _ in scalars["validation/loss"]] == [s for s, _ in want]
    assert all(abs(a - b) < 1e-5 for (_, a), (_, b) in zip(scalars["validation/loss"], want))
    assert [s for s, _ in scalars["train/loss"]] == [r["step"] for r in logged if "train_loss" in r]
    # Each check's samples as text, at the check's step, as samples.jsonl has them.
    events = EventAccumulator(str(tb))
    events.Reload()
    texts = events.Tensors("samples/temperature 0.5/text_summary")
    assert [e.step for e in texts] == [20, 40]
    first = json.loads((out / "samples.jsonl").read_text().splitlines()[0])["text"]
    assert texts[0].tensor_proto.string_val[0].decode().split("\n")[0] == "    " + first.split("\n")[0]


def test_a_resumed_run_continues_the_same_curves(tmp_path, dialogue_file):
    tb = tmp_path / "tb"

    def stop_at_20(event, trainer):
        if event == "on_step" and trainer.state.step == 20:
            trainer.stop_requested = "test"

    with TensorBoardLogger(tb) as logger:
        scriptrnn.train(dialogue_file, tmp_path / "run", callbacks=[logger, stop_at_20],
                        **dict(TINY_TRAIN, max_steps=40))
    with TensorBoardLogger(tb) as logger:
        scriptrnn.train(out=tmp_path / "run", resume=True, progress=False, callbacks=[logger])
    steps = [s for s, _ in read_scalars(tb)["validation/loss"]]
    assert steps == [20, 40]  # one curve, each check once
