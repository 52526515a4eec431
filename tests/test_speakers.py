"""Speakers and script shape: --speaker, --cast (both levels), --lines, --scenes, whole lines, --format."""

import io
import re

import numpy as np
import pytest
from screenplain.parsers import fountain as screenplain_parser
from screenplain.types import Action, Dialog, Slug, Transition

import scriptrnn
from scriptrnn import ScriptRNNError
from scriptrnn.cli import main
from scriptrnn.generate.constraints import CastMask, SuppressTokens
from scriptrnn.generate.sampling import safe_softmax
from scriptrnn.generate.speakers import cast_mask, resolve_cast, resolve_speaker
from scriptrnn.data.tokenizer import CharTokenizer, WordTokenizer

from .conftest import TINY_TRAIN
from .test_fountain import PILOT

# Two kinds of scene, each with its own pair of speakers; a blank line ends each scene.
SCENES = (
    "[int. the diner - day]\n"
    "jerry: what is the deal with airline food?\n"
    "george: i am not a man of the sea!\n"
    "jerry: you are not.\n"
    "\n"
    "[int. jerry's apartment - night]\n"
    "elaine: get out! you're kidding.\n"
    "kramer: giddy up, i said.\n"
    "elaine: no.\n"
    "\n"
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speakers")
    (folder / "scenes.txt").write_text(SCENES * 50, encoding="utf-8")
    return {level: scriptrnn.train(folder / "scenes.txt", folder / level, level=level, max_steps=steps,
                                   lr=1e-2, **TINY_TRAIN).out_dir
            for level, steps in (("char", 300), ("word", 100))}


def speech_lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip() and not line.startswith("[")]


# --------------------------------------------------------------------------- the rule itself


def test_cast_mask_spells_out_names_at_char_level():
    tok = CharTokenizer.fit("jerry george elaine: hi[]\n")
    ids = lambda s: [tok.token_id(c) for c in s]  # noqa: E731
    rule = cast_mask(tok, ["jerry", "george"])
    allowed = lambda state: {tok.vocab[i] for i in np.flatnonzero(  # noqa: E731
        ~np.isinf(rule(state, np.zeros((1, tok.vocab_size), dtype=np.float32)))[0])}
    state = rule.start(1)
    assert allowed(state) == {"j", "g", "[", "\n"}
    state = rule.advance(state, ids("j"))
    assert allowed(state) == {"e"}
    for c in "erry":
        state = rule.advance(state, ids(c))
    assert allowed(state) == {":"}
    state = rule.advance(state, ids(":"))
    assert state == [CastMask.FREE] and len(allowed(state)) == tok.vocab_size  # the speech is free
    assert rule.advance(state, ids("\n")) == [CastMask.ROOT]
    assert rule.advance(rule.start(1), ids("[")) == [CastMask.FREE]  # a direction line is free


def test_cast_mask_at_word_level_masks_speaker_words_and_follows_long_names():
    tok = WordTokenizer.fit("jerry: hi.\nfirst witch: hail.\nfirst lord: no.\n[exit]\n")
    rule = cast_mask(tok, ["jerry", "first witch"])
    scores = rule(rule.start(2), np.zeros((2, tok.vocab_size), dtype=np.float32))
    at_start = {tok.vocab[i] for i in np.flatnonzero(~np.isinf(scores[0]))}
    assert at_start == {"jerry", "first", "xxlbracket", "xxnewline"}
    state = rule.advance(rule.start(1), [tok.token_id("first")])
    scores = rule(state, np.zeros((1, tok.vocab_size), dtype=np.float32))
    assert {tok.vocab[i] for i in np.flatnonzero(~np.isinf(scores[0]))} == {"witch"}


def test_at_a_line_start_the_cast_gets_the_share_of_all_speeches():
    tok = WordTokenizer.fit("jerry: hi.\ngeorge: no.\nelaine: yes.\n[exit]\n")
    scores = np.random.default_rng(0).standard_normal((3, tok.vocab_size)).astype(np.float32)
    before = safe_softmax(scores)
    after = safe_softmax(cast_mask(tok, ["jerry", "george"])([CastMask.ROOT] * 3, scores))
    free = [tok.token_id("["), tok.token_id("\n")]
    assert np.allclose(after[:, free], before[:, free], atol=1e-6)  # directions and blank lines as before
    cast = [tok.token_id("jerry"), tok.token_id("george")]
    assert np.allclose(after[:, cast].sum(-1), 1 - before[:, free].sum(-1), atol=1e-6)
    assert np.allclose(after[:, cast[0]] / after[:, cast[1]], before[:, cast[0]] / before[:, cast[1]], rtol=1e-4)


def test_suppress_tokens():
    scores = SuppressTokens([1, 3], 5)(None, np.zeros((2, 5), dtype=np.float32))
    assert np.isinf(scores[:, [1, 3]]).all() and not np.isinf(scores[:, [0, 2, 4]]).any()


def test_names_match_without_regard_to_case_and_unknown_ones_are_listed():
    known = ["jerry", "george", "FIRST WITCH"]
    assert resolve_speaker(" Jerry ", known) == "jerry"
    assert resolve_speaker("first  witch", known) == "FIRST WITCH"
    assert resolve_cast("george,JERRY,george,", known) == ["george", "jerry"]
    with pytest.raises(ScriptRNNError, match="unknown speaker 'newman'; this model knows: jerry, george, FIRST WITCH"):
        resolve_cast("jerry,newman", known)
    with pytest.raises(ScriptRNNError, match="knows no speakers"):
        resolve_speaker("jerry", [])


# --------------------------------------------------------------------------- real models


@pytest.mark.parametrize("level", ["char", "word"])
def test_cast_keeps_every_line_to_the_cast(runs, level):
    model = scriptrnn.load(runs[level])
    settings = dict(max_new_tokens=250 if level == "char" else 80, temperature=1.3, seed=4, num_return_sequences=4,
                    prime="[int. jerry's apartment - night]\n")
    free = model.generate(**settings)
    cast = model.generate(cast="George, jerry", **settings)
    # Each sequence's last line may be cut short by the token budget: it is left out.
    speakers = lambda texts: {line.split(":")[0] for text in texts for line in speech_lines(text)[:-1]}  # noqa: E731
    assert speakers(free) - {"jerry", "george"}  # without the cast, the scene's own speakers (and typos) come
    assert speakers(cast) <= {"jerry", "george"} and len(speech_lines("\n".join(cast))) >= 8


@pytest.mark.parametrize("level", ["char", "word"])
def test_speaker_starts_the_text_with_their_line(runs, level):
    model = scriptrnn.load(runs[level])
    assert model.generate(speaker="KRAMER", max_new_tokens=5, seed=1)[0].startswith("kramer:")
    assert model.generate("giddy", speaker="kramer", max_new_tokens=5, seed=1)[0].startswith("kramer: giddy")


def test_lines_and_scenes_stop_rules(runs):
    model = scriptrnn.load(runs["word"])
    text = model.generate(speaker="jerry", max_new_tokens=500, max_lines=5, seed=2)[0]
    assert len([line for line in text.split("\n") if line.strip()]) == 5 and text.endswith("\n")
    text = model.generate("[int. the diner - day]\n", max_new_tokens=500, max_scenes=2, seed=2)[0]
    scenes = [s for s in text.split("\n\n") if s.strip()]
    assert len(scenes) == 2 and text.endswith("\n\n") and all(s.startswith("[int.") for s in scenes)


def test_whole_lines_drop_a_line_cut_short(runs):
    model = scriptrnn.load(runs["char"])
    cut = model.generate(speaker="jerry", max_new_tokens=100, seed=5)[0]
    whole = model.generate(speaker="jerry", max_new_tokens=100, seed=5, whole_lines=True)[0]
    assert not cut.endswith("\n") and whole.endswith("\n") and cut.startswith(whole)
    assert cut[len(whole):].count("\n") == 0
    streamed = list(model.stream(speaker="jerry", max_new_tokens=100, seed=5, whole_lines=True))
    assert all(piece[0] == "" or piece[0].endswith("\n") for piece in streamed)  # a line at a time


def test_with_no_whole_line_the_text_comes_cut_at_a_word_end(runs):
    model = scriptrnn.load()  # the shipped model: its speeches are long lines
    stream = model.stream("romeo", max_new_tokens=60, seed=1, whole_lines=True)
    text = "".join(piece[0] for piece in stream)
    exact = model.generate("romeo", max_new_tokens=60, seed=1)[0]
    assert stream.cut == [True] and stream.generation.finish_reasons == ["length"]
    assert text.startswith("ROMEO: ") and "\n" not in text and exact.startswith(text)
    assert exact[len(text)] == " " and len(text) > len("ROMEO: ")  # the last whole word, then the cut
    whole = model.stream("romeo", max_new_tokens=800, seed=1, whole_lines=True)
    assert "".join(piece[0] for piece in whole).endswith("\n") and whole.cut == [False]


def test_word_level_cut_text_keeps_its_last_word(runs):
    model = scriptrnn.load(runs["word"])
    stream = model.stream(speaker="jerry", max_new_tokens=3, seed=5, whole_lines=True)
    text = "".join(piece[0] for piece in stream)
    if "\n" not in text:  # the tiny model may end its line within 3 words
        assert stream.cut == [True] and text == model.generate(speaker="jerry", max_new_tokens=3, seed=5)[0]


def test_cli_prints_the_cut_text_and_says_so(capsys):
    assert main(["generate", "--prime", "romeo", "--max-new-tokens", "60", "--seed", "33"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("ROMEO: ") and captured.out.count("\n") == 1
    assert captured.err.startswith("scriptrnn: no whole line within --max-new-tokens 60, so text is cut at a word")
    assert main(["generate", "--prime", "romeo", "--max-new-tokens", "60", "--seed", "33",
                 "--num-return-sequences", "2"]) == 0
    captured = capsys.readouterr()
    # Sequence 2 ended its speech within 60 characters; only sequence 1 is cut.
    assert captured.out.count("ROMEO: ") == 2 and "so text 1 is cut" in captured.err


def test_cli_speaker_cast_and_lines(runs, capsys):
    assert main(["generate", str(runs["word"]), "--speaker", "elaine", "--cast", "elaine,kramer", "--lines", "6",
                 "--seed", "3", "--temperature", "1.2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("elaine:") and len([line for line in out.split("\n") if line.strip()]) == 6
    assert {line.split(":")[0] for line in speech_lines(out)} <= {"elaine", "kramer"}
    assert main(["generate", str(runs["word"]), "--cast", "jerry,newman"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scriptrnn: error: unknown speaker 'newman'; this model knows: ") and err.count("\n") == 1
    assert main(["info", str(runs["char"])]) == 0
    assert "speakers (4, most speeches first): jerry, elaine, george, kramer" in capsys.readouterr().out


# --------------------------------------------------------------------------- screenplays out


@pytest.fixture(scope="module")
def fountain_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fountain")
    body = PILOT.split("\n\n", 1)[1]  # the pilot after its title page, thirty times over
    (folder / "pilot.fountain").write_text(PILOT + ("\n" + body) * 30, encoding="utf-8")
    return scriptrnn.train(folder / "pilot.fountain", folder / "run", level="word", max_steps=100, lr=1e-2,
                           **TINY_TRAIN).out_dir


def test_generate_as_fountain_pdf_and_html(fountain_run, tmp_path, capsys):
    # --cast puts a speaker cue at most line starts, so the tiny model writes dialogue whatever it drew.
    assert main(["generate", str(fountain_run), "--format", "fountain", "--lines", "12", "--seed", "1",
                 "--cast", "jerry,george,elaine"]) == 0
    fountain = capsys.readouterr().out
    parsed = list(screenplain_parser.parse(io.StringIO(fountain)))
    assert all(isinstance(p, (Slug, Action, Dialog, Transition)) for p in parsed)
    assert sum(isinstance(p, Dialog) for p in parsed) >= 2
    assert re.search(r"^(JERRY|GEORGE|ELAINE)$", fountain, re.MULTILINE)
    assert main(["generate", str(fountain_run), "--lines", "12", "--seed", "1", "--output",
                 str(tmp_path / "scene.pdf")]) == 0
    assert (tmp_path / "scene.pdf").read_bytes().startswith(b"%PDF-")
    assert main(["generate", str(fountain_run), "--lines", "4", "--format", "html", "--num-return-sequences",
                 "2"]) == 0
    assert capsys.readouterr().out.startswith("<!DOCTYPE html>")
    assert main(["generate", str(fountain_run), "--format", "pdf"]) == 2
    assert "add --output scene.pdf" in capsys.readouterr().err
