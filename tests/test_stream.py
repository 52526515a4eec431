"""Streaming preparation: a modest corpus through many tiny chunks gives exactly what the whole text gives.

The chunk size is set to a few bytes (SCRIPTRNN_CHUNK_BYTES), so chunk edges fall inside
multi-byte characters, CRLF pairs, words and speaker names; every figure is checked
against a reference computed here from the whole text with the whole-text functions.
"""

from __future__ import annotations

import hashlib
import json
import random

import numpy as np
import pytest

import scriptrnn
from scriptrnn.data.batching import split_ids
from scriptrnn.data.corpus import corpus_stats, find_speakers, read_corpus
from scriptrnn.data.scan import CorpusScan
from scriptrnn.data.stream import CHUNK_BYTES_ENV, Recut, chunk_bytes, streamed_files
from scriptrnn.data.token_cache import TOKENS_FILE
from scriptrnn.data.tokenizer import fit_tokenizer
from scriptrnn.errors import ScriptRNNError
from scriptrnn.training.config import TrainConfig
from scriptrnn.training.prepare import StreamedText

NAMES = ["JERRY", "George", "élaine", "Krämer (to jerry)", "日本の人", "NEWMAN"]
WORDS = ["what", "is", "the", "deal", "café", "naïve", "über", "日本語", "𝄞music", "don't", "well...", "(pause)",
         "no!", "yes?", "a-b", "\"quoted\"", "ΣΟΦΟΣ", "ΑΣ", "Straße", "x:y"]


def _corpus_files(tmp_path, kilobytes: int = 300) -> list:
    """Dialogue and prose with CRLF, trailing spaces, a BOM, blank lines and an empty file, ~kilobytes in all."""
    rng = random.Random(16)
    tmp_path.mkdir(exist_ok=True)
    files = []
    for i, crlf in enumerate((False, True, False)):
        lines = []
        while sum(len(line) for line in lines) < kilobytes * 1000 // 3:
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 14)))
            kind = rng.random()
            if kind < 0.6:
                lines.append(f"{rng.choice(NAMES)}: {words}" + " " * rng.randint(0, 2))
            elif kind < 0.8:
                lines.append(words + "\t ")
            else:
                lines.append("   " if kind < 0.9 else "[scene: a café]")
        text = ("\r\n" if crlf else "\n").join(lines)
        path = tmp_path / f"part{i}.txt"
        path.write_bytes(("\ufeff" if i == 1 else "").encode() + text.encode("utf-8"))
        files.append(path)
    (tmp_path / "part3-empty.txt").write_text("  \n\n \r\n")
    files.append(tmp_path / "part3-empty.txt")
    return files


@pytest.fixture
def tiny_chunks(monkeypatch):
    monkeypatch.setenv(CHUNK_BYTES_ENV, "7")


def test_the_test_corpus_puts_chunk_edges_inside_characters_and_crlf(tmp_path):
    data = b"".join(f.read_bytes() for f in _corpus_files(tmp_path))
    edges = range(7, len(data), 7)
    assert sum(1 for e in edges if data[e] & 0xC0 == 0x80) > 1000  # a UTF-8 continuation byte starts a chunk
    assert sum(1 for e in edges if data[e - 1:e + 1] == b"\r\n") > 100


def test_pieces_join_to_exactly_the_whole_text(tmp_path, tiny_chunks):
    files = _corpus_files(tmp_path)
    pieces = list(streamed_files(files).pieces())
    assert len(pieces) > 20_000
    assert "".join(pieces) == read_corpus(files).text


@pytest.mark.parametrize("level,min_count", [("char", 1), ("word", 1), ("word", 3)])
def test_scan_gives_the_whole_text_figures(tmp_path, tiny_chunks, level, min_count):
    files = _corpus_files(tmp_path)
    whole = read_corpus(files)
    scan = CorpusScan.of(streamed_files(files).pieces(), level=level, stats=True)
    reference = fit_tokenizer(whole.text, level, min_count=min_count)
    assert scan.tokenizer(min_count=min_count).to_dict() == reference.to_dict()  # same order, ties included
    assert scan.sha256 == hashlib.sha256(whole.text.encode("utf-8")).hexdigest()
    assert scan.speakers.most_common() == find_speakers(whole.text).most_common()  # ties in the same order
    assert scan.speakers["Krämer"] > 100
    assert scan.stats(whole.name) == corpus_stats(whole)
    assert scan.tokens == len(reference.encode(whole.text, strict=False))


@pytest.mark.parametrize("level", ["char", "word"])
def test_streamed_ids_and_split_equal_the_whole_texts(tmp_path, tiny_chunks, level):
    files = _corpus_files(tmp_path, kilobytes=120)
    whole = read_corpus(files).text
    config = TrainConfig(level=level, batch_size=4, seq_len=8)
    text = StreamedText(streamed_files(files), level, True)
    tokenizer = text.tokenizer(config)
    ids = np.concatenate(list(text.ids(tokenizer, config)))
    reference = fit_tokenizer(whole, level).encode(whole, strict=False)
    assert np.array_equal(ids, reference)
    assert text.train_tokens(tokenizer, config) == len(split_ids(reference, config.val_fraction)[0])


def test_ties_keep_the_order_words_first_appear_in_across_chunk_edges(tmp_path, tiny_chunks):
    path = tmp_path / "ties.txt"
    path.write_text("zeta alpha mu zeta beta alpha gamma omega\n" * 3, encoding="utf-8")
    tokenizer = CorpusScan.of(streamed_files([path]).pieces(), level="word").tokenizer()
    assert tokenizer.vocab == ["zeta", "alpha", "mu", "beta", "gamma", "omega", "xxnewline", "<unk>"]  # <unk> always (issue 14)
    path.write_text("bob: x\nann (to bob): y\nann: z\ncy: a\nbob (aside): w\n", encoding="utf-8")
    speakers = CorpusScan.of(streamed_files([path]).pieces()).speakers
    assert speakers.most_common() == [("bob", 2), ("ann", 2), ("cy", 1)]


@pytest.mark.parametrize("level", ["char", "word"])
def test_a_run_prepared_in_tiny_chunks_records_the_whole_texts_facts(tmp_path, monkeypatch, level):
    files = _corpus_files(tmp_path / "data", kilobytes=60)
    whole = read_corpus(files).text
    monkeypatch.setenv(CHUNK_BYTES_ENV, "5")
    out = tmp_path / "run"
    scriptrnn.train(files, out, level=level, max_steps=1, hidden_size=16, embedding_size=8, num_layers=1,
                    seq_len=8, batch_size=4, eval_every=1, eval_tokens=64, progress=False)
    config = json.loads((out / "config.json").read_text())
    tokenizer = fit_tokenizer(whole, level, lowercase=False, min_count=2)  # a run's defaults: case kept
    assert json.loads((out / "tokenizer.json").read_text())["vocab"] == tokenizer.vocab
    assert config["corpus"]["sha256"] == hashlib.sha256(whole.encode("utf-8")).hexdigest()
    assert config["corpus"]["characters"] == len(whole)
    assert config["corpus"]["speakers"] == [s for s, _ in find_speakers(whole).most_common(500)]
    reference = tokenizer.encode(whole, strict=False)
    assert config["corpus"]["train_tokens"] == len(split_ids(reference, 0.1)[0])
    cached = np.fromfile(out / TOKENS_FILE, dtype="<u2", offset=8 + 1024)
    assert np.array_equal(cached, reference)
    # The chunk size does not change the run: resuming it with the default size reads the same fingerprint.
    monkeypatch.delenv(CHUNK_BYTES_ENV)
    assert scriptrnn.train(out=out, resume=True, max_steps=2, progress=False).steps == 2


def test_a_bad_byte_far_into_a_file_is_named_by_its_file_offset(tmp_path, tiny_chunks):
    path = tmp_path / "bad.txt"
    path.write_bytes("é".encode() * 5000 + b"\xff" + b"tail\n")
    with pytest.raises(ScriptRNNError) as whole:
        read_corpus([path])
    with pytest.raises(ScriptRNNError) as streamed:
        list(streamed_files([path]).pieces())
    assert str(streamed.value) == str(whole.value) and "offset 10000" in str(whole.value)


def test_the_chunk_size_setting_is_checked(monkeypatch):
    monkeypatch.setenv(CHUNK_BYTES_ENV, "4096")
    assert chunk_bytes() == 4096
    monkeypatch.setenv(CHUNK_BYTES_ENV, "lots")
    with pytest.raises(ScriptRNNError, match=CHUNK_BYTES_ENV):
        chunk_bytes()


def test_recut_never_splits_a_word_or_a_line():
    words, lines = Recut("word"), Recut("line")
    text = "Hello wor" + "ld\nσοφος  end"
    out_words = [words.feed(p) for p in ("Hello wor", "ld\nσοφος", "  end")] + [words.flush()]
    out_lines = [lines.feed(p) for p in ("Hello wor", "ld\nσοφος", "  end")] + [lines.flush()]
    assert out_words == ["Hello ", "world\n", "σοφος  ", "end"] and "".join(out_words) == text
    assert out_lines == ["", "Hello world\n", "", "σοφος  end"]


def test_the_corpus_command_streams_the_same_figures(tmp_path, tiny_chunks, capsys):
    from scriptrnn.cli import main
    from scriptrnn.data.corpus import format_stats

    files = _corpus_files(tmp_path, kilobytes=60)
    assert main(["corpus", *map(str, files)]) == 0
    whole = read_corpus(files)
    assert capsys.readouterr().out == f"corpus: {whole.name}\n{format_stats(corpus_stats(whole))}\n"
