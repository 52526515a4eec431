"""Nothing unknown on the page: no path that writes text ever draws a reserved token (``<unk>``).

The model here is rigged so that ``<unk>`` is by far its first choice everywhere (its output
bias), which it would then write at nearly every step; the terminal, the Python API, the
server, the serverless handler and the exported runtime must all write other words instead.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

import scriptrnn
from scriptrnn.data.tokenizer import UNK, CharTokenizer, WordTokenizer
from scriptrnn.generate.generation import Generation
from scriptrnn.generate.sampling import SamplingConfig, next_tokens, probabilities
from scriptrnn.model.checkpoint import load_checkpoint, save_weights
from scriptrnn.model.export import export_onnx
from scriptrnn.runtime import load as load_exported
from scriptrnn.server import create_app, load_models
from scriptrnn.server.serverless import make_handler

from .conftest import make_run

TOKENS = 40
SETTINGS = [dict(seed=1), dict(seed=2, temperature=1.5), dict(seed=3, top_k=3, top_p=0.9),
            dict(temperature=0), dict(do_sample=False, repetition_penalty=1.3)]


def _rig(run):
    """Raise <unk>'s output bias until it is the model's first choice by a wide margin."""
    model, tokenizer, _ = load_checkpoint(run)
    with torch.no_grad():
        model.decoder.bias[tokenizer.unk_id] += 25.0
    save_weights(run, model)
    return run


@pytest.fixture(scope="module")
def rigged(tmp_path_factory):
    """(run directory, exported directory) of a word-level model that ranks <unk> first."""
    folder = tmp_path_factory.mktemp("rigged")
    run = _rig(make_run(folder / "run", "lstm", "word"))
    export_onnx(run, folder / "exported")
    return run, folder / "exported"


def test_the_tokenizers_say_what_is_reserved():
    word = WordTokenizer.fit("jerry: hi. george: hi.")
    assert [word.vocab[i] for i in word.reserved_ids] == [UNK]
    assert CharTokenizer.fit("jerry: hi").reserved_ids == ()


def test_the_rig_works_so_the_tests_can_fail(rigged):
    """Without the model's rules, the rigged model does write <unk>: the tests below are not vacuous."""
    writer = scriptrnn.load(rigged[0])
    g = Generation(writer, "jerry", SamplingConfig(max_new_tokens=TOKENS, seed=1), rules=[])
    g.run()
    assert g.tokens[0].count(writer.tokenizer.unk_id) > TOKENS // 2
    assert UNK in g.texts[0]
    exported = load_exported(rigged[1], threads=1)  # the exported graph carries the rig too
    assert (exported.start("george", max_new_tokens=1).scores.argmax(axis=-1) == writer.tokenizer.unk_id).all()


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: json.dumps(s))
def test_python_api_and_runtime_never_write_unk(rigged, settings):
    for writer in (scriptrnn.load(rigged[0]), load_exported(rigged[1], threads=1)):
        stream = writer.stream("jerry", max_new_tokens=TOKENS, num_return_sequences=3, **settings)
        texts = ["".join(column) for column in zip(*stream)]
        assert all(UNK not in text for text in texts), texts
        assert all(writer.tokenizer.unk_id not in tokens for tokens in stream.generation.tokens)
        assert all(len(tokens) == TOKENS for tokens in stream.generation.tokens)  # the others were written


def test_its_probability_is_shared_out_not_given_to_one_word(rigged):
    """After the mask, the other tokens keep their ratios: softmax renormalises what is left."""
    writer = scriptrnn.load(rigged[0])
    g = writer.start("jerry", max_new_tokens=5)
    unk = writer.tokenizer.unk_id
    raw = probabilities(g.scores, g.seen, [])[0]
    ruled = probabilities(g.ruled_scores(), g.seen, [])[0]
    assert raw[unk] > 0.99 and ruled[unk] == 0.0
    others = np.arange(len(raw)) != unk
    np.testing.assert_allclose(ruled[others], raw[others] / raw[others].sum(), rtol=1e-6)
    assert next_tokens(g.ruled_scores(), g.seen, [], True, None)[0] == np.argmax(np.where(others, raw, -1))


def test_the_terminal_never_writes_unk(rigged, tmp_path):
    for model_dir in rigged:
        done = subprocess.run(
            [sys.executable, "-m", "scriptrnn", "generate", str(model_dir), "--prime", "jerry", "--seed", "4",
             "--max-new-tokens", str(TOKENS), "--temperature", "1.0", "--no-whole-lines",
             "--num-return-sequences", "2"], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() and UNK not in done.stdout


@pytest.mark.parametrize("parameters", [{"seed": 5}, {"temperature": 0}], ids=["sampled", "greedy"])
def test_the_server_and_the_serverless_handler_never_write_unk(rigged, parameters):
    body = {"inputs": "george", "parameters": {"max_new_tokens": TOKENS, "details": True, **parameters}}
    with TestClient(create_app(load_models([rigged[0]], threads=1))) as client:
        served = client.post("/generate", json=body).json()
        completed = client.post("/v1/completions", json={"prompt": "jerry", "max_tokens": TOKENS, "n": 2,
                                                         "seed": 6}).json()
    event = {"httpMethod": "POST", "path": "/generate", "headers": {"content-type": "application/json"},
             "body": json.dumps(body)}
    handled = json.loads(make_handler(rigged[1], threads=1)(event)["body"])
    for answer in (served, handled):
        assert UNK not in answer["generated_text"]
        assert len(answer["details"]["tokens"]) == TOKENS
        assert all(token["text"].strip() != UNK for token in answer["details"]["tokens"])
    assert all(UNK not in choice["text"] for choice in completed["choices"])
