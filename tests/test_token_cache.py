"""The token cache: compact ids written once, memory-mapped for training, rebuilt when stale."""

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

import scriptrnn
from scriptrnn.data.batching import StreamBatches
from scriptrnn.evaluation.scoring import loss_sums
from scriptrnn.model.network import ModelConfig, RNNLanguageModel
from scriptrnn.data.token_cache import TOKENS_FILE, cache_key, ids_dtype, open_cache, write_cache
from scriptrnn.data.tokenizer import CharTokenizer

from .conftest import TINY_TRAIN


def test_ids_round_trip_through_a_read_only_memory_map(tmp_path):
    ids = np.random.default_rng(0).integers(0, 300, size=10_001).astype(np.uint16)
    path = tmp_path / TOKENS_FILE
    assert write_cache(path, [ids], key="k", vocab_size=300) == len(ids)
    mapped = open_cache(path, "k")
    assert isinstance(mapped, np.memmap) and Path(mapped.filename) == path  # file-backed, not a copy
    assert mapped.dtype == np.uint16 and not mapped.flags.writeable
    assert np.array_equal(mapped, ids)


def test_the_file_is_plain_safetensors(tmp_path):
    ids = np.arange(1000, dtype=np.uint32) * 70
    write_cache(tmp_path / TOKENS_FILE, [ids], key="k", vocab_size=70_000)
    assert np.array_equal(load_file(tmp_path / TOKENS_FILE)["ids"], ids)  # any safetensors reader opens it


@pytest.mark.parametrize("vocab_size, dtype", [(2, np.uint16), (65_536, np.uint16), (65_537, np.uint32),
                                               (3_000_000, np.uint32)])
def test_the_smallest_type_that_holds_every_id(vocab_size, dtype):
    assert ids_dtype(vocab_size) == dtype


def test_ids_streamed_in_chunks_are_written_whole(tmp_path):
    chunks = [np.arange(i * 100, (i + 1) * 100) % 50 for i in range(7)]
    write_cache(tmp_path / TOKENS_FILE, iter(chunks), key="k", vocab_size=50)
    assert np.array_equal(open_cache(tmp_path / TOKENS_FILE, "k"), np.concatenate(chunks))


def test_ids_outside_the_vocabulary_are_refused_and_nothing_is_left(tmp_path):
    with pytest.raises(ValueError):
        write_cache(tmp_path / TOKENS_FILE, [np.array([1, 2, 99])], key="k", vocab_size=50)
    assert list(tmp_path.iterdir()) == []


def test_another_corpus_or_vocabulary_makes_another_key():
    tok = CharTokenizer.fit("abc")
    assert cache_key("a" * 64, tok) != cache_key("b" * 64, tok)
    assert cache_key("a" * 64, tok) != cache_key("a" * 64, CharTokenizer.fit("abcd"))
    assert cache_key("a" * 64, tok) == cache_key("a" * 64, CharTokenizer.fit("cba"))


def test_a_stale_truncated_or_foreign_file_is_not_used(tmp_path):
    path = tmp_path / TOKENS_FILE
    write_cache(path, [np.arange(100) % 7], key="old", vocab_size=7)
    assert open_cache(path, "new") is None  # the corpus or vocabulary changed
    path.write_bytes(path.read_bytes()[:-1])
    assert open_cache(path, "old") is None  # cut short
    path.write_bytes(b"\x80\x04pickle")
    assert open_cache(path, "old") is None
    assert open_cache(tmp_path / "missing", "old") is None


def test_training_reads_the_memory_map_and_a_resume_rebuilds_a_damaged_cache(tmp_path, dialogue_file):
    seen = []
    grab = lambda event, trainer: seen.append(trainer) if event == "on_eval" else None  # noqa: E731
    settings = dict(TINY_TRAIN, level="char", max_steps=20)
    scriptrnn.train(dialogue_file, tmp_path / "run", callbacks=[grab], **settings)
    trainer = seen[0]
    assert isinstance(trainer.batches.ids, np.memmap) and isinstance(trainer.val_ids, np.memmap)
    assert Path(trainer.batches.ids.filename) == tmp_path / "run" / TOKENS_FILE
    tokenizer = CharTokenizer.fit(dialogue_file.read_text())
    assert np.array_equal(open_cache(tmp_path / "run" / TOKENS_FILE, _key_of(tmp_path / "run")),
                          tokenizer.encode(dialogue_file.read_text()))

    (tmp_path / "run" / TOKENS_FILE).write_bytes(b"damaged")
    resumed = scriptrnn.train(out=tmp_path / "run", resume=True, progress=False, max_steps=30)
    assert resumed.steps == 30
    assert open_cache(tmp_path / "run" / TOKENS_FILE, _key_of(tmp_path / "run")) is not None


def _key_of(run_dir):
    import json

    from scriptrnn.data.tokenizer import tokenizer_from_dict

    config = json.loads((run_dir / "config.json").read_text())
    tokenizer = tokenizer_from_dict(json.loads((run_dir / "tokenizer.json").read_text()))
    return cache_key(config["corpus"]["sha256"], tokenizer)


def _anonymous_memory() -> int:
    """Bytes of this process's memory that no file backs (the page cache of a memmap is not counted)."""
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    pytest.skip("no /proc/self/status RssAnon here")


def test_batches_and_evaluation_read_windows_without_copying_the_corpus(tmp_path):
    n = 30_000_000  # 60 MB as uint16; 240 MB if it were turned into int64
    chunks = (np.arange(i, i + 1_000_000, dtype=np.int64) % 97 for i in range(0, n, 1_000_000))
    write_cache(tmp_path / TOKENS_FILE, chunks, key="k", vocab_size=97)
    ids = open_cache(tmp_path / TOKENS_FILE, "k")
    model = RNNLanguageModel(ModelConfig(vocab_size=97, hidden_size=8, embedding_size=4, num_layers=1))
    before = _anonymous_memory()
    batches = StreamBatches(ids, batch_size=16, seq_len=32, seed=0)
    for window in (0, 1, batches.windows_per_epoch - 1):
        x, y = batches.batch(3, window)
        assert x.dtype == torch.int64 and x.shape == (16, 32)
    total, count = loss_sums(model, ids, max_tokens=20_000)
    assert count > 19_000
    assert _anonymous_memory() - before < 20 * 2**20


def test_rows_of_a_process_are_its_share_of_the_global_batch():
    ids = np.arange(5000)
    whole = StreamBatches(ids, batch_size=8, seq_len=10, seed=1)
    parts = [StreamBatches(ids, batch_size=8, seq_len=10, seed=1, rows=(lo, lo + 4)) for lo in (0, 4)]
    for epoch, window in ((0, 0), (2, 5)):
        x, y = whole.batch(epoch, window)
        halves = [p.batch(epoch, window) for p in parts]
        assert torch.equal(torch.cat([h[0] for h in halves]), x) and torch.equal(torch.cat([h[1] for h in halves]), y)
    assert parts[0].windows_per_epoch == whole.windows_per_epoch


def test_evaluation_split_over_processes_adds_up_to_the_whole():
    torch.manual_seed(0)
    model = RNNLanguageModel(ModelConfig(vocab_size=11, hidden_size=8, embedding_size=4, num_layers=1))
    ids = np.arange(3001) % 11
    total, count = loss_sums(model, ids)
    for world in (2, 3, 40):  # 40 > 32 streams: some processes score nothing, and still take part
        parts = [loss_sums(model, ids, part=(rank, world)) for rank in range(world)]
        assert sum(c for _, c in parts) == count
        assert sum(t for t, _ in parts) == pytest.approx(total, rel=1e-6)
