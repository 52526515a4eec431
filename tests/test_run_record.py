"""The run record (model/record.py) and the settings resolver (training/config.py ``resolve``).

tests/data/run-before-record holds runs made by scriptrnn as it was before the typed record
(commit af5b490): ``run`` (char level, 1x16, trained 20 steps, with its resume point and token
cache) and ``child`` (fine-tuned from it on two styles, a.txt and b.txt). Their config.json name
the corpus files where they were made; the tests point them at copies, as a user who moved a run
directory would.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import scriptrnn
from scriptrnn.cli import main
from scriptrnn.errors import ScriptRNNError
from scriptrnn.model.directory import read_config
from scriptrnn.training.config import SIZE_AUTO, SIZE_AUTO_LATER, resolve

OLD = Path(__file__).parent / "data" / "run-before-record"


def _old_run(tmp_path: Path, name: str = "run") -> Path:
    """A copy of an old run, its corpus paths pointed at copies of its files (and nothing else changed)."""
    for text in ("scripts.txt", "a.txt", "b.txt"):
        shutil.copy(OLD / text, tmp_path / text)
    run = tmp_path / name
    shutil.copytree(OLD / name, run)
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    source = config["corpus"]["source"]
    source["paths"] = [str(tmp_path / Path(p).name) for p in source["paths"]]
    for style in source.get("styles", []):
        style["paths"] = [str(tmp_path / Path(p).name) for p in style["paths"]]
    (run / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
    return run


@pytest.mark.parametrize("name", ["run", "child"])
def test_an_old_config_reads_and_writes_back_unchanged(name):
    raw = json.loads((OLD / name / "config.json").read_text(encoding="utf-8"))
    record = read_config(OLD / name)
    assert record.to_dict() == raw and list(record.to_dict()) == list(raw)  # every key kept, in its order
    assert record.decided_by == {}  # made before the resolver recorded it


def test_an_old_run_loads_generates_evaluates_and_resumes(tmp_path, capsys):
    run = _old_run(tmp_path)
    model = scriptrnn.load(run)
    assert model.generate("jerry", max_new_tokens=10, seed=0)[0].startswith("jerry:")
    assert scriptrnn.evaluate(run)["loss"] > 0
    assert main(["info", str(run), "--settings"]) == 0
    assert "settings: not recorded" in capsys.readouterr().out
    result = scriptrnn.train(out=run, resume=True, max_steps=30, progress=False)
    assert result.steps == 30 and result.stopped_because.startswith("reached --max-steps")
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    old = json.loads((OLD / "run" / "config.json").read_text(encoding="utf-8"))
    # a run that ends records the machine it trained on (the model card's line); nothing else is added
    assert set(config) == set(old) | {"machine"} and config["training"]["max_steps"] == 30 and config["metrics"]["steps"] == 30
    assert config["corpus"]["sha256"] == old["corpus"]["sha256"]


def test_an_old_fine_tuned_styled_run_writes_in_its_styles(tmp_path):
    child = _old_run(tmp_path, "child")
    model = scriptrnn.load(child)
    assert set(model.styles) == {"seinfeld", "simpsons"}
    text = model.generate("", style="simpsons", max_new_tokens=8, seed=0)[0]
    assert text.startswith("homer:")  # the style's own leading speaker, from the record's styles
    facts = scriptrnn.info(child)
    assert [s["name"] for s in facts["styles"]] == ["seinfeld", "simpsons"] and facts["held_out"]["loss"] > 0
    assert read_config(child).parent.corpus == "scripts"


def test_an_export_of_an_old_run_reads_the_same_record(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from scriptrnn.model.export import export_onnx

    run = _old_run(tmp_path)
    export_onnx(run, tmp_path / "exported")
    record, run_record = read_config(tmp_path / "exported"), read_config(run)
    assert record.format == "scriptrnn-onnx" and record.export
    assert (record.model, record.corpus, record.metrics) == (run_record.model, run_record.corpus, run_record.metrics)
    assert scriptrnn.load(tmp_path / "exported").generate("jerry", max_new_tokens=3, seed=0)


def test_unknown_keys_are_kept(tmp_path):
    run = _old_run(tmp_path)
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    config["from_the_future"] = {"x": 1}
    config["corpus"]["also_new"] = [1, 2]
    config["metrics"]["val"]["new_figure"] = 2.5
    (run / "config.json").write_text(json.dumps(config), encoding="utf-8")
    assert read_config(run).to_dict() == config
    assert scriptrnn.load(run).generate("jerry", max_new_tokens=3, seed=0)


# Issue 28, breaks 5 and 6: each of these was a traceback in serve, info or both.
DAMAGES = [
    (lambda c: c["metrics"].update(val=[1]), "'metrics.val' must be a JSON object"),
    (lambda c: c["metrics"]["val"].update(loss="abc"), "'metrics.val.loss' must be a finite number"),
    (lambda c: c["corpus"].update(name="\ud800"), "'corpus.name' holds a lone surrogate"),
    (lambda c: c["corpus"].update(speakers=["jerry", "\udfff"]), "'corpus.speakers[1]' holds a lone surrogate"),
    (lambda c: c["parent"].update(held_out_loss="low"), "'parent.held_out_loss' must be a finite number"),
    (lambda c: c["corpus"]["styles"][0].update(speakers="homer"), "'corpus.styles[0].speakers' must be a list"),
    (lambda c: c["model"].update(hidden_size=1.5), "'model.hidden_size' must be a whole number"),
    (lambda c: c.update(decided_by=["user"]), "'decided_by' must be a JSON object"),
]


def _damaged(tmp_path: Path, edit) -> Path:
    run = _old_run(tmp_path, "child")
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    edit(config)
    # ensure_ascii: a lone surrogate is written as the \ud800 escape, as a hand edit or another tool would
    (run / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return run


@pytest.mark.parametrize("edit, match", DAMAGES)
def test_a_wrong_type_anywhere_is_one_line_naming_the_file_and_field(tmp_path, capsys, edit, match):
    run = _damaged(tmp_path, edit)
    for argv in (["info", run], ["generate", run, "--max-new-tokens", "3"], ["evaluate", run],
                 ["export", run, "--out", tmp_path / "exported"]):
        code = main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1, (argv, err)
        assert str(run / "config.json") in err and match in err, (argv, err)
    with pytest.raises(ScriptRNNError, match="config.json"):
        scriptrnn.load(run)


@pytest.mark.parametrize("edit, match", DAMAGES[:3])
def test_serve_refuses_a_damaged_config_in_one_line(tmp_path, edit, match):
    run = _damaged(tmp_path, edit)
    done = subprocess.run([sys.executable, "-m", "scriptrnn", "serve", str(run), "--port", "8"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and match in done.stderr, done.stderr


# ---------------------------------------------------------------- the resolver


def test_each_setting_records_the_layer_that_decided_it():
    r = resolve({"level": "char", "time_budget": 2.0, "hidden_size": 128}, vocab_size=70)
    assert r.decided_by["level"] == r.decided_by["hidden_size"] == r.decided_by["time_budget"] == "user"
    assert r.decided_by["dropout_output"] == r.decided_by["size"] == "level"  # LEVEL_DEFAULTS["char"]
    assert r.decided_by["cell"] == "default" and r.decided_by["vocab_size"] == "vocabulary"
    assert r.train.epochs is None and r.decided_by["epochs"] == "--time-budget"
    assert r.model.hidden_size == 128 and r.model.vocab_size == 70
    word = resolve({"level": "word"}, vocab_size=20_000)
    assert (word.model.softmax, word.decided_by["softmax"]) == ("adaptive", "vocabulary")
    assert word.decided_by["batch_size"] == "level" and word.train.batch_size == 32


def test_size_auto_and_its_weight_drop_are_recorded():
    def probe(model, train, given, vocab_size):
        assert "hidden_size" not in given and vocab_size == 70
        from dataclasses import replace

        return {**model, "num_layers": 1, "hidden_size": 384, "weight_drop": 0.2}, \
            replace(train, batch_size=32), {"choice": "1x384", "probe_s": 3.0}

    r = resolve({"time_budget": 5.0, "seq_len": 64}, vocab_size=70, size=probe)
    assert (r.model.hidden_size, r.decided_by["hidden_size"]) == (384, SIZE_AUTO)
    assert r.decided_by["batch_size"] == SIZE_AUTO and r.decided_by["seq_len"] == "user"  # given: kept
    assert (r.model.weight_drop, r.decided_by["weight_drop"]) == (0.2, "sizing's weight drop")
    assert r.sizing["probe_s"] == 3.0


def test_a_parent_contradicted_by_a_flag_is_refused():
    from scriptrnn.training.config import ParentSettings

    parent = ParentSettings("runs/p", {"hidden_size": 64, "level": "char", "cell": "gru"})
    with pytest.raises(ScriptRNNError, match="--hidden-size 128 contradicts the parent's 64"):
        resolve({"hidden_size": 128}, parent=parent)
    r = resolve({}, parent=parent, vocab_size=40)
    assert (r.model.cell, r.decided_by["cell"], r.decided_by["lr"]) == ("gru", "parent", "fine-tuning")


def test_dry_run_prints_the_record_and_writes_nothing(tmp_path, capsys, dialogue_file):
    out = tmp_path / "never"
    assert main(["train", str(dialogue_file), "--out", str(out), "--dry-run", "--time-budget", "1",
                 "--layers", "1"]) == 0
    printed = capsys.readouterr().out
    assert not out.exists()
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in printed.splitlines()[2:] if len(line.split()) >= 3}
    assert rows["num_layers"] == ["1", "user"] and rows["time_budget"] == ["1.0", "user"]
    assert rows["hidden_size"][1] == "level" and rows["vocab_size"][1] == "vocabulary"
    assert "size: fixed" not in printed or "--size auto chooses" in printed
    assert main(["train", str(dialogue_file), "--out", str(out), "--dry-run", "--time-budget", "1"]) == 0
    printed = capsys.readouterr().out
    assert "size: auto (chosen when the run starts)" in printed and SIZE_AUTO_LATER in printed
    assert not out.exists()


def test_info_prints_the_record_of_a_new_run(tmp_path, capsys, dialogue_file):
    run = tmp_path / "r"
    scriptrnn.train(dialogue_file, run, hidden_size=16, embedding_size=8, num_layers=1, seq_len=16, batch_size=4,
                    max_steps=4, eval_every=4, eval_tokens=200, progress=False, sample_every=0)
    assert read_config(run).decided_by["hidden_size"] == "user"
    assert main(["info", str(run), "--settings"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split() == ["hidden_size", "16", "user"] for line in lines)
    assert any(line.split() == ["dropout_output", "0.25", "level"] for line in lines)
    scriptrnn.train(out=run, resume=True, max_steps=8, progress=False)
    assert read_config(run).decided_by["max_steps"] == "user, on --resume"
