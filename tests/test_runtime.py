"""Export to ONNX, then generate with onnxruntime: the same scores, the same text as PyTorch."""

import json
import subprocess
import sys

import numpy as np
import pytest

import scriptrnn
from scriptrnn import ScriptRNNError
from scriptrnn.model.export import export_onnx
from scriptrnn.generate.generation import Generation, sample_together, step_together
from scriptrnn.runtime import MODEL_FILE, OnnxModel, evaluate_loss, is_exported, load
from scriptrnn.generate.sampling import SamplingConfig

from .conftest import DIALOGUE, make_run

CASES = [(cell, level, "full") for cell in ("lstm", "gru", "rnn") for level in ("char", "word")]
CASES += [("lstm", "word", "adaptive"), ("lstm", "subword", "full"), ("gru", "subword", "full")]
PRIMES = {"char": "jerry: what is the", "word": "george: i am not", "subword": "george: i am not"}


@pytest.fixture(scope="module", params=CASES, ids=lambda case: "-".join(case))
def pair(request, tmp_path_factory):
    """(PyTorch model, onnxruntime model, level) for one cell type, level and output layer."""
    cell, level, softmax = request.param
    folder = tmp_path_factory.mktemp(f"{cell}-{level}")
    run = make_run(folder / "run", cell, level, softmax=softmax)
    export_onnx(run, folder / "onnx")
    return scriptrnn.load(run), load(folder / "onnx", threads=1), level


def _lockstep(a: Generation, b: Generation, steps: int) -> float:
    """Step two generations side by side; the largest score difference seen. Their draws must agree."""
    worst = 0.0
    a.prefill(), b.prefill()
    for _ in range(steps):
        worst = max(worst, float(np.abs(a.scores - b.scores).max()))
        assert a.sample() == b.sample()
        if a.done:
            break
        step_together(a.owner.model, [a])
        step_together(b.owner.model, [b])
    return worst


def test_scores_match_pytorch_at_every_step(pair):
    torch_model, onnx_model, level = pair
    config = SamplingConfig(max_new_tokens=80, temperature=0, num_return_sequences=2).validate()
    worst = _lockstep(Generation(torch_model, PRIMES[level], config),
                      Generation(onnx_model, PRIMES[level], config), 80)
    assert worst < 1e-4


def test_greedy_text_is_identical(pair):
    torch_model, onnx_model, level = pair
    for prime in (PRIMES[level], "kramer", ""):
        want = torch_model.generate(prime, max_new_tokens=100, temperature=0)
        assert onnx_model.generate(prime, max_new_tokens=100, temperature=0) == want


def test_seeded_sampled_text_is_identical(pair):
    torch_model, onnx_model, level = pair
    settings = dict(max_new_tokens=100, seed=11, temperature=0.9, top_k=20, top_p=0.95, repetition_penalty=1.1,
                    num_return_sequences=3)
    assert onnx_model.generate("elaine", **settings) == torch_model.generate("elaine", **settings)
    # The script rules (constraints.py) apply to the scores of either library alike.
    cast = dict(settings, cast="jerry,george", speaker="george", max_lines=3)
    assert onnx_model.generate("", **cast) == torch_model.generate("", **cast)


def test_requests_stepped_together_write_what_each_writes_alone(pair):
    _, onnx_model, level = pair
    configs = [SamplingConfig(max_new_tokens=30, seed=1), SamplingConfig(max_new_tokens=20, seed=2, top_k=3),
               SamplingConfig(max_new_tokens=25, temperature=0, num_return_sequences=2)]
    primes = [PRIMES[level], "jerry", ""]
    generations = [Generation(onnx_model, p, c.validate()) for p, c in zip(primes, configs)]
    for g in generations:
        g.prefill()
    running = list(generations)
    while running:
        sample_together(running)
        running = [g for g in running if not g.done]
        if running:
            step_together(onnx_model.model, running)
    for g, prime, config in zip(generations, primes, configs):
        alone = onnx_model.generate(prime, config)
        assert [g.prime_text + text for text in g.texts] == alone


def test_held_out_loss_matches_pytorch(pair):
    torch_model, onnx_model, level = pair
    from scriptrnn.evaluation.scoring import evaluate_loss as torch_loss

    ids = torch_model.tokenizer.encode(DIALOGUE * 3)
    want, count = torch_loss(torch_model.model, ids, streams=4)
    got, got_count = evaluate_loss(onnx_model.model, ids, streams=4)
    assert got_count == count and abs(got - want) < 1e-4


def test_model_card_facts_come_through(pair):
    torch_model, onnx_model, _ = pair
    assert onnx_model.model.parameter_count() == torch_model.model.parameter_count()
    assert onnx_model.speakers == torch_model.speakers and onnx_model.level == torch_model.level


# ------------------------------------------------------------- the export itself


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("lstm") / "run")


def test_export_writes_data_only_files_and_marks_them(run, tmp_path):
    facts = export_onnx(run, tmp_path / "x")
    # README.md: the model card (hub/card.py), the export's own, with its tag
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["README.md", "config.json", MODEL_FILE,
                                                                  "tokenizer.json"]
    assert "- onnx\n" in (tmp_path / "x" / "README.md").read_text()
    config = json.loads((tmp_path / "x" / "config.json").read_text())
    assert config["format"] == "scriptrnn-onnx" and config["export"] == facts and facts["state"] == ["h", "c"]
    assert (tmp_path / "x" / "tokenizer.json").read_text() == (run / "tokenizer.json").read_text()
    assert is_exported(tmp_path / "x") and not is_exported(run)


def test_export_refuses_to_replace_anything_silently(run, tmp_path):
    out = tmp_path / "x"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ScriptRNNError, match="--overwrite"):
        export_onnx(run, out)
    export_onnx(run, out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / MODEL_FILE).is_file()
    with pytest.raises(ScriptRNNError, match="training run"):
        export_onnx(run, run, overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ScriptRNNError, match="is a file"):
        export_onnx(run, tmp_path / "file")
    assert not list(tmp_path.glob(".*.tmp")) and not list(out.glob(".*.tmp"))


def test_int8_is_smaller_and_still_writes(run, tmp_path):
    export_onnx(run, tmp_path / "f")
    facts = export_onnx(run, tmp_path / "q", quantize="int8")
    assert facts["quantize"] == "int8"
    assert (tmp_path / "q" / MODEL_FILE).stat().st_size < (tmp_path / "f" / MODEL_FILE).stat().st_size
    text = load(tmp_path / "q").generate("jerry", max_new_tokens=40, seed=1)[0]
    assert text.startswith("jerry") and len(text) > 20
    with pytest.raises(ScriptRNNError, match="--quantize"):
        export_onnx(run, tmp_path / "z", quantize="int4")


def test_damaged_exports_are_refused_in_one_line(run, tmp_path):
    export_onnx(run, tmp_path / "x")
    x = tmp_path / "x"
    config = json.loads((x / "config.json").read_text())
    (x / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(ScriptRNNError, match="newer scriptrnn"):
        load(x)
    (x / "config.json").write_text(json.dumps({**config, "model": {**config["model"], "hidden_size": 7}}))
    with pytest.raises(ScriptRNNError, match="do not fit config.json"):
        load(x)
    (x / "config.json").write_text(json.dumps(config))
    (x / MODEL_FILE).write_bytes(b"\x80\x04 not a graph")
    with pytest.raises(ScriptRNNError, match="not an ONNX graph"):
        load(x)
    (x / MODEL_FILE).unlink()
    with pytest.raises(ScriptRNNError, match="missing model.onnx"):
        load(x)
    with pytest.raises(ScriptRNNError, match="not an exported"):
        load(run)
    export_onnx(run, tmp_path / "y")
    with pytest.raises(ScriptRNNError, match="CPU"):
        load(tmp_path / "y", device="cuda")


def test_cli_export_then_generate_and_evaluate(run, tmp_path):
    def cli(*args):
        done = subprocess.run([sys.executable, "-m", "scriptrnn", *map(str, args)], capture_output=True, text=True,
                              timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = tmp_path / "onnx"
    assert "scriptrnn generate" in cli("export", run, "--out", out)
    settings = ["--prime", "jerry", "--max-new-tokens", "60", "--seed", "5", "--num-return-sequences", "2"]
    assert cli("generate", out, *settings) == cli("generate", run, *settings)
    data = tmp_path / "d.txt"
    data.write_text(DIALOGUE * 5)
    scores = [dict(line.split(": ") for line in cli("evaluate", d, data).splitlines()) for d in (run, out)]
    assert scores[0]["loss"].endswith(" nats/char")
    assert abs(float(scores[0]["loss"].split()[0]) - float(scores[1]["loss"].split()[0])) < 1e-4
