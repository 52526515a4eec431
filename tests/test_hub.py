"""Sharing on the Hugging Face Hub, offline with the real library: cards, the cache, hostile downloads.

The cache is filled the way ``snapshot_download`` fills it (blobs named by hash, snapshots/<commit>/
links to them, refs/<branch> holding the commit), then read with HF_HUB_OFFLINE=1. Only the test
that uploads needs the network and a token; it is skipped, saying why, without them.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import scriptrnn
from scriptrnn.errors import ScriptRNNError
from scriptrnn.hub.download import parse_reference, resolve
from scriptrnn.hub.share import share

from .conftest import DIALOGUE, TINY_TRAIN

huggingface_hub = pytest.importorskip("huggingface_hub")
from huggingface_hub import ModelCard  # noqa: E402

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A finished tiny run (its card is written as it ends)."""
    root = tmp_path_factory.mktemp("hub")
    data = root / "scripts.txt"
    data.write_text(DIALOGUE * 60, encoding="utf-8")
    scriptrnn.train(data, root / "run", max_steps=40, seed=3, **TINY_TRAIN)
    return root / "run"


def fill_cache(cache: Path, repo_id: str, files: dict[str, bytes], ref: str = "main") -> Path:
    """Lay out ``files`` as the Hub library's cache holds a download of ``repo_id``; the snapshot folder."""
    root = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = root / "snapshots" / COMMIT
    for folder in (snapshot, root / "blobs", root / "refs"):
        folder.mkdir(parents=True, exist_ok=True)
    (root / "refs" / ref).write_text(COMMIT)
    for name, data in files.items():
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / name)
    return snapshot


@pytest.fixture
def offline_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hub cache, with the library offline (its settings, as HF_HUB_OFFLINE=1 would set them)."""
    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


def shared(run: Path, tmp_path: Path, repo_id: str = "someone/tiny") -> dict[str, bytes]:
    out = tmp_path / "shared"
    share(run, out, repo_id=repo_id)
    return {p.name: p.read_bytes() for p in out.iterdir()}


# ---------------------------------------------------------------- the card


def test_a_finished_run_has_a_card_the_hub_library_reads(run):
    card = ModelCard.load(run / "README.md")
    config = json.loads((run / "config.json").read_text())
    data = card.data.to_dict()
    assert data["library_name"] == "scriptrnn" and data["pipeline_tag"] == "text-generation"
    assert {"lstm", "char-level"} <= set(data["tags"])
    assert "license" not in data  # the user's to choose
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results["loss"] == round(config["metrics"]["val"]["loss"], 4)
    assert results["bits_per_character"] == round(config["metrics"]["val"]["bits_per_char"], 4)
    assert config["corpus"]["sha256"] in card.text and f"{config['corpus']['characters']:,} characters" in card.text
    assert config["command"] in card.text and config["machine"] in card.text
    assert "nats/char" in card.text
    sample = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()][-2]["text"]
    assert sample.strip("\n") in card.text  # a real sample, the run's own
    assert DIALOGUE.strip() not in card.text  # never the corpus's text


def test_share_copies_only_what_loading_needs_and_names_the_repository(run, tmp_path):
    files = shared(run, tmp_path, "someone/tiny")
    assert sorted(files) == ["README.md", "config.json", "model.safetensors", "tokenizer.json"]
    assert "hf:someone/tiny" in files["README.md"].decode() and "OWNER/NAME" not in files["README.md"].decode()
    assert ModelCard(files["README.md"].decode()).data.model_name == "someone/tiny"


def test_a_readme_that_is_not_ours_is_left_alone(tmp_path):
    from scriptrnn.hub.card import write_card

    (tmp_path / "README.md").write_text("# my project\n")
    assert write_card(tmp_path, {"model": {}, "training": {}}) is None
    assert (tmp_path / "README.md").read_text() == "# my project\n"


# ---------------------------------------------------------------- hf:OWNER/NAME from the cache


def test_a_cached_hub_model_loads_offline_and_writes_what_the_local_one_does(run, tmp_path, offline_cache):
    snapshot = fill_cache(offline_cache, "someone/tiny", shared(run, tmp_path))
    assert resolve("hf:someone/tiny") == snapshot and resolve(f"hf:someone/tiny@{COMMIT}") == snapshot
    hub, local = scriptrnn.load("hf:someone/tiny"), scriptrnn.load(run)
    assert hub.generate("jerry:", max_new_tokens=60, seed=5) == local.generate("jerry:", max_new_tokens=60, seed=5)
    assert scriptrnn.info("hf:someone/tiny")["vocab_size"] == scriptrnn.info(run)["vocab_size"]


def test_the_cli_generates_and_fine_tunes_from_a_cached_hub_model(run, tmp_path, dialogue_file):
    cache = tmp_path / "cache"
    fill_cache(cache, "someone/tiny", shared(run, tmp_path))
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    cli = [sys.executable, "-m", "scriptrnn"]
    done = subprocess.run([*cli, "generate", "hf:someone/tiny", "--max-new-tokens", "40"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    done = subprocess.run([*cli, "train", str(dialogue_file), "--init-from", "hf:someone/tiny", "--max-steps", "3",
                           "--eval-every", "3", "--quiet", "--out", str(tmp_path / "child")], env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    missing = subprocess.run([*cli, "generate", "hf:someone/other"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert missing.returncode == 2 and "not in the Hub cache" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("text", ["hf:", "hf:tiny", "hf:a/b/c", "hf:a/b@", "hf:../x", "hf:a/..", "hf:a b/c"])
def test_a_malformed_reference_is_one_line(text):
    with pytest.raises(ScriptRNNError, match="is not a Hub model"):
        parse_reference(text)


def test_a_revision_is_parsed():
    assert parse_reference("hf:someone/tiny@v1.0") == ("someone/tiny", "v1.0")
    assert parse_reference("hf:someone/tiny") == ("someone/tiny", None)


# ---------------------------------------------------------------- hostile downloads


def test_a_link_out_of_the_cache_is_refused(run, tmp_path, offline_cache):
    files = shared(run, tmp_path)
    snapshot = fill_cache(offline_cache, "someone/evil", {k: v for k, v in files.items() if k != "tokenizer.json"})
    secret = tmp_path / "secret.json"
    secret.write_text(files["tokenizer.json"].decode())
    os.symlink(secret, snapshot / "tokenizer.json")
    with pytest.raises(ScriptRNNError, match="leads outside the Hub cache"):
        scriptrnn.load("hf:someone/evil")


def test_a_pickle_in_place_of_the_weights_is_refused(run, tmp_path, offline_cache):
    import pickle

    fill_cache(offline_cache, "someone/pickled", {"model.bin": pickle.dumps({"weights": 1}),
                                                  "README.md": b"# a model\n"})
    with pytest.raises(ScriptRNNError, match="pickle files are refused"):
        scriptrnn.load("hf:someone/pickled")


def test_oversized_and_deeply_nested_json_are_refused(run, tmp_path, offline_cache):
    files = shared(run, tmp_path)
    nested = fill_cache(offline_cache, "someone/nested", {**files, "config.json": b"[" * 5000 + b"]" * 5000})
    with pytest.raises(ScriptRNNError, match="nested deeper"):
        scriptrnn.load("hf:someone/nested")
    snapshot = fill_cache(offline_cache, "someone/huge", files)
    blob = (snapshot / "tokenizer.json").resolve()
    with open(blob, "r+b") as f:
        f.truncate(300 * 2**20)  # sparse: 300 MB on paper, nothing on disk
    with pytest.raises(ScriptRNNError, match="at most"):
        scriptrnn.load("hf:someone/huge")
    assert nested.exists()


# ---------------------------------------------------------------- optional packages


def test_export_without_onnx_names_the_extra_in_one_line(tmp_path):
    code = ("import sys; sys.modules['onnx'] = None\n"
            "from scriptrnn.cli import main\n"
            f"sys.exit(main(['export', '--out', {str(tmp_path / 'x')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == ("scriptrnn: error: `scriptrnn export` needs onnx, which is not installed here: "
                                   "pip install 'scriptrnn[export]'")


# ---------------------------------------------------------------- the real Hub (network and a token)


def _hub_reachable() -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not os.environ.get("HF_TOKEN"), reason="pushing needs a Hub token in HF_TOKEN")
@pytest.mark.skipif(not _hub_reachable(), reason="huggingface.co cannot be reached from here")
def test_push_then_generate_from_the_hub(run, tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    from scriptrnn.hub.share import push

    repo = f"{HfApi().whoami()['name']}/scriptrnn-test-{os.getpid()}"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    try:
        push(run, repo, private=True)
        assert scriptrnn.load(f"hf:{repo}").generate("", max_new_tokens=20, seed=1)
    finally:
        HfApi().delete_repo(repo, missing_ok=True)
