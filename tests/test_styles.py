"""One model, many styles: sources and manifests, the tagged text, and real conditioned training."""

import json

import numpy as np
import pytest

import scriptrnn
from scriptrnn import ScriptRNNError
from scriptrnn.cli import main
from scriptrnn.data.styles import (
    MAX_CHUNK_CHARS,
    MIN_CHUNK_CHARS,
    StyleSource,
    interleave,
    scene_chunks,
    style_sources,
)
from scriptrnn.data.sources import load_styled_corpus

from .conftest import TINY_TRAIN


def cats_and_dogs(folder):
    """Two styles a tiny model tells apart in seconds: every word differs between them."""
    cats = "".join("tom: meow meow, said the cat.\nfelix: purr. the mouse is mine.\n[the cat sleeps]\n"
                   + ("\n" if i % 7 == 6 else "") for i in range(120))
    dogs = "".join("rex: woof! woof! fetch the ball!\nfido: grr, bark bark.\n[the dog runs]\n"
                   + ("\n" if i % 7 == 6 else "") for i in range(120))
    (folder / "cats.txt").write_text(cats, encoding="utf-8")
    (folder / "dogs.txt").write_text(dogs, encoding="utf-8")
    return folder / "cats.txt", folder / "dogs.txt"


# --------------------------------------------------------------------------- naming the sources


def test_path_colon_style_arguments(tmp_path):
    cats, dogs = cats_and_dogs(tmp_path)
    sources = style_sources([f"{cats}:cats", f"{dogs}:dogs", f"{dogs}:cats"])
    assert [(s.style, [p.rsplit("/", 1)[1] for p in s.paths]) for s in sources] == [
        ("cats", ["cats.txt", "dogs.txt"]), ("dogs", ["dogs.txt"])]
    assert style_sources([cats, dogs]) is None  # no styles: an ordinary run
    (tmp_path / "odd:name").write_text("jerry: a file really named so.\n")
    assert style_sources([tmp_path / "odd:name"]) is None
    with pytest.raises(ScriptRNNError, match="give every DATA a style"):
        style_sources([f"{cats}:cats", dogs])
    with pytest.raises(ScriptRNNError, match="given twice"):
        style_sources({"Cats": cats, "cats": dogs})


def test_styles_by_genre_and_by_file(tmp_path):
    cats, dogs = cats_and_dogs(tmp_path)
    assert [s.style for s in style_sources(None, by="genre", genres=["tragedies", "comedies"])] == \
        ["tragedies", "comedies"]
    assert len(style_sources(None, by="genre")) == 6
    assert style_sources(None, by="genre", genres=["comedies"])[0] == StyleSource("comedies", genres=("comedies",))
    assert [s.style for s in style_sources([cats, dogs], by="file")] == ["cats", "dogs"]
    assert [s.style for s in style_sources([f"{cats}:felines"], by="genre", genres=["roman"])] == ["felines", "roman"]
    with pytest.raises(ScriptRNNError, match="unknown Shakespeare genre 'tragedy'.*did you mean 'tragedies'"):
        style_sources(None, by="genre", genres=["tragedy"])
    with pytest.raises(ScriptRNNError, match="--styles must be one of genre, file"):
        style_sources([cats], by="show")
    with pytest.raises(ScriptRNNError, match="give each a style"):
        style_sources([cats], by="genre")


def test_manifest(tmp_path):
    cats, dogs = cats_and_dogs(tmp_path)
    (tmp_path / "styles.toml").write_text(
        '[styles.cats]\npaths = ["cats.txt"]\n\n[styles.dogs]\npaths = "dogs.txt"\n\n'
        '[styles.comedy]\ncorpus = "shakespeare"\ngenres = ["comedies", "romances"]\n')
    sources = style_sources(tmp_path / "styles.toml")
    assert sources == [StyleSource("cats", (str(cats.resolve()),)), StyleSource("dogs", (str(dogs.resolve()),)),
                       StyleSource("comedy", (), "shakespeare", ("comedies", "romances"))]


@pytest.mark.parametrize("text, message", [
    ("[styles.cats\n", "not valid TOML"),
    ("title = 'x'\n", r"only \[styles.NAME\] tables"),
    ("[styles.cats]\nfiles = ['cats.txt']\n", "takes corpus, genres, paths"),
    ("[styles.cats]\npaths = ['cats.txt']\ngenres = ['comedies']\n", "not both"),
    ("[styles.cats]\npaths = [1]\n", "a string or a list of strings"),
    ('[styles."two words"]\npaths = ["cats.txt"]\n', "letters, digits"),
])
def test_bad_manifests_say_what_is_wrong(capsys, tmp_path, text, message):
    cats_and_dogs(tmp_path)
    (tmp_path / "styles.toml").write_text(text)
    with pytest.raises(ScriptRNNError, match=message):
        style_sources(tmp_path / "styles.toml")
    assert main(["train", str(tmp_path / "styles.toml"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


# --------------------------------------------------------------------------- the tagged text


def test_chunks_are_scenes_merged_to_a_minimum_and_cut_at_a_maximum():
    scene = "jerry: hi.\n" * 30  # 330 characters
    text = "\n".join([scene] * 10) + "one very long scene line\n" * 1000
    chunks = scene_chunks(text)
    assert "".join(chunks).replace("\n", "") == text.replace("\n", "")
    assert all(not c.startswith("\n") and c.endswith("\n") and not c.endswith("\n\n") for c in chunks)
    assert all(MIN_CHUNK_CHARS <= len(c) <= MAX_CHUNK_CHARS + 100 for c in chunks[:-1])


def test_every_chunk_is_tagged_and_each_style_holds_out_its_own_end(tmp_path):
    cats, dogs = cats_and_dogs(tmp_path)
    corpus = load_styled_corpus(style_sources({"cats": cats, "dogs": dogs}))
    assert corpus.styles == {"cats": "\ue000", "dogs": "\ue001"}
    split = corpus.split(0.1)
    for name, tag in corpus.styles.items():
        own = (cats if name == "cats" else dogs).read_text()
        held_out = split.val_by_style[name]
        assert held_out.startswith(tag + "\n")
        words = held_out.replace(tag + "\n", "").replace("\n", "")
        assert own.replace("\n", "").endswith(words)  # the style's own end...
        assert 0.08 < len(words) / len(own.replace("\n", "")) < 0.12  # ...about 10% of it
    # Training text switches between the styles all along, always right after a tag.
    tags = [line for line in split.train.split("\n") if line in ("\ue000", "\ue001")]
    assert tags.count("\ue000") > 3 and tags.count("\ue001") > 3
    assert any(a == b for a, b in zip(tags, tags[1:])) and any(a != b for a, b in zip(tags, tags[1:]))
    merged = interleave([["a1", "a2", "a3"], ["b1", "b2"]])
    assert [c for c in merged if c[0] == "a"] == ["a1", "a2", "a3"]
    assert [c for c in merged if c[0] == "b"] == ["b1", "b2"]
    assert merged == interleave([["a1", "a2", "a3"], ["b1", "b2"]])  # seeded: a run's text never changes


def test_tags_avoid_private_use_characters_the_corpus_already_has(tmp_path):
    (tmp_path / "icons.txt").write_text("jerry: \ue000 \ue001 icons from a font.\n" * 50)
    (tmp_path / "plain.txt").write_text("george: plain.\n" * 50)
    corpus = load_styled_corpus(style_sources([f"{tmp_path / 'icons.txt'}:a", f"{tmp_path / 'plain.txt'}:b"]))
    assert corpus.styles == {"a": "\ue002", "b": "\ue003"}


# --------------------------------------------------------------------------- conditioned training


@pytest.fixture(scope="module")
def styled_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("styles")
    cats, dogs = cats_and_dogs(folder)
    runs = {}
    # A char-level model needs more steps to tie the whole text to one character at its start.
    for level, steps, hidden in (("char", 600, 64), ("word", 120, 48)):
        settings = dict(TINY_TRAIN, hidden_size=hidden, seq_len=32, lr=1e-2, max_steps=steps, eval_every=100)
        scriptrnn.train([f"{cats}:cats", f"{dogs}:dogs"], folder / level, level=level, **settings)
        runs[level] = folder / level
    return runs


@pytest.mark.parametrize("level", ["char", "word"])
def test_generates_in_the_style_asked_for(styled_runs, level):
    model = scriptrnn.load(styled_runs[level])
    assert model.styles == {"cats": "\ue000", "dogs": "\ue001"}
    cat_words, dog_words = ("meow", "purr", "cat"), ("woof", "bark", "dog")
    for style, own, other in (("cats", cat_words, dog_words), ("DOGS", dog_words, cat_words)):
        texts = model.generate("", max_new_tokens=120, temperature=0.5, seed=3, num_return_sequences=8,
                               style=style)
        in_style = [sum(t.count(w) for w in own) > sum(t.count(w) for w in other) for t in texts]
        assert sum(in_style) >= 6, (style, texts)  # a tiny model, sampled: most, if not all
        assert not any("\ue000" in t or "\ue001" in t for t in texts)  # tags are never written
        greedy = model.generate("", max_new_tokens=40, temperature=0, style=style)[0]
        assert any(w in greedy for w in own) and not any(w in greedy for w in other), greedy


@pytest.mark.parametrize("level", ["char", "word"])
def test_a_style_without_prime_opens_with_its_leading_speaker(styled_runs, level):
    model = scriptrnn.load(styled_runs[level])
    for style, leading in (("cats", "tom"), ("dogs", "rex")):
        text = model.generate("", max_new_tokens=10, seed=1, style=style)[0]
        assert text.lower().startswith(leading + ":"), text
    # A speaker or a prime of one's own wins.
    assert model.generate("", max_new_tokens=5, seed=1, style="cats", speaker="felix")[0].lower().startswith("felix:")


def test_a_served_styled_model_never_writes_its_tags(styled_runs):
    from scriptrnn.generate.generation import Generation
    from scriptrnn.generate.sampling import SamplingConfig

    model = scriptrnn.load(styled_runs["char"])
    generation = Generation(model, "", SamplingConfig(max_new_tokens=5).validate())  # as the server builds one
    generation.prefill()
    scores = generation.ruled_scores()
    assert np.isinf(scores[:, [model.tokenizer.token_id(t) for t in model.styles.values()]]).all()


def test_config_and_info_record_the_styles(styled_runs):
    config = json.loads((styled_runs["char"] / "config.json").read_text())
    styles = config["corpus"]["styles"]
    assert [(s["name"], s["tag"], s["speakers"]) for s in styles] == [
        ("cats", "\ue000", ["tom", "felix"]), ("dogs", "\ue001", ["rex", "fido"])]
    assert config["corpus"]["source"]["styles"][0]["style"] == "cats"
    facts = scriptrnn.info(styled_runs["word"])
    assert facts["level"] == "word" and [s["name"] for s in facts["styles"]] == ["cats", "dogs"]
    assert set(facts["speakers"]) == {"tom", "felix", "rex", "fido"}


def test_evaluate_reports_each_styles_held_out_end(styled_runs, capsys):
    report = scriptrnn.evaluate(styled_runs["char"])
    assert set(report["styles"]) == {"cats", "dogs"}
    config = json.loads((styled_runs["char"] / "config.json").read_text())
    assert report["loss"] == pytest.approx(config["metrics"]["val"]["loss"], rel=1e-4)
    assert main(["evaluate", str(styled_runs["char"])]) == 0
    out = capsys.readouterr().out
    assert "style cats: loss" in out and "style dogs: loss" in out


def test_unknown_style_lists_the_styles(styled_runs, capsys):
    assert main(["generate", str(styled_runs["char"]), "--style", "birds"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "scriptrnn: error: unknown style 'birds'; this model's styles: cats, dogs"
    assert main(["generate", "--style", "comedies"]) == 2  # the built-in model has none
    assert "trained without styles" in capsys.readouterr().err


def test_styled_run_resumes_on_its_own_sources(tmp_path):
    cats, dogs = cats_and_dogs(tmp_path)

    def stop_at_10(event, trainer):
        if event == "on_step" and trainer.state.step == 10:
            trainer.stop_requested = "test"

    settings = dict(TINY_TRAIN, max_steps=20, eval_every=10)
    stopped = scriptrnn.train({"cats": cats, "dogs": dogs}, tmp_path / "run", callbacks=[stop_at_10], **settings)
    assert stopped.steps == 10
    assert scriptrnn.train(out=tmp_path / "run", resume=True, progress=False).steps == 20
    dogs.write_text(dogs.read_text() + "rex: a new line.\n")
    with pytest.raises(ScriptRNNError, match="has changed since this run started"):
        scriptrnn.train(out=tmp_path / "run", resume=True, progress=False)


def test_built_in_plays_by_genre_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "genres"
    assert main(["train", "--styles", "genre", "--genre", "romances", "roman", "--out", str(out), "--max-steps", "2",
                 "--hidden-size", "8", "--embedding-size", "8", "--layers", "1", "--seq-len", "16",
                 "--batch-size", "4", "--eval-tokens", "2000", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "style romances:" in info and "style roman:" in info
    assert main(["generate", str(out), "--style", "roman", "--max-new-tokens", "20", "--no-whole-lines"]) == 0
