"""Turns as a script takes them (issue 26): no speaker follows himself, no direction is addressed to its speaker.

The rule (generate/constraints.py: TurnTaking) on its own, then on a model rigged to want one speaker
everywhere, through the Python API and the exported runtime.
"""

import numpy as np
import pytest
import torch

import scriptrnn
from scriptrnn.data.tokenizer import WordTokenizer, fit_tokenizer
from scriptrnn.generate.constraints import TurnTaking, _telling
from scriptrnn.generate.generation import Generation
from scriptrnn.generate.sampling import SamplingConfig
from scriptrnn.generate.speakers import turn_taking
from scriptrnn.model.checkpoint import load_checkpoint, save_weights
from scriptrnn.model.export import export_onnx
from scriptrnn.runtime import load as load_exported

from .conftest import DIALOGUE, make_run

CAST = ["jerry", "george", "elaine", "kramer"]
ADDRESSED = "elaine: (to jerry) hi.\njerry: (to elaine) what?\n"


def _rule(text=DIALOGUE + ADDRESSED, level="word"):
    tokenizer = fit_tokenizer(text, level, vocab_size=300)
    return tokenizer, turn_taking(tokenizer, CAST)


def _after(rule: TurnTaking, tokenizer, text: str):
    state = rule.start(1)
    for token in tokenizer.encode(text, strict=False):
        state = rule.advance(state, [int(token)])
    return state


def _allowed(rule, tokenizer, text: str, word: str, scores=None) -> bool:
    scores = np.zeros((1, tokenizer.vocab_size), dtype=np.float32) if scores is None else scores
    ruled = rule(_after(rule, tokenizer, text), scores)
    return bool(np.isfinite(ruled[0, tokenizer.token_id(word)]))


def test_the_last_speaker_cannot_open_the_next_speech_and_his_share_goes_to_the_others():
    tokenizer, rule = _rule()
    assert not _allowed(rule, tokenizer, "jerry: what is the deal?\n", "jerry")
    assert not _allowed(rule, tokenizer, "jerry: what is the deal?\n\n", "jerry")  # a blank line keeps the turn
    assert _allowed(rule, tokenizer, "jerry: what is the deal?\n", "george")
    assert _allowed(rule, tokenizer, "jerry: what is the deal?\n(pushes him)\n", "jerry")  # a direction between
    assert _allowed(rule, tokenizer, "jerry: what is the deal? jerry", "jerry")  # mid-line: a name is a word
    scores = np.log(np.full((1, tokenizer.vocab_size), 1e-3, dtype=np.float64))
    cues = [tokenizer.token_id(name) for name in CAST]
    scores[0, cues] = np.log([0.5, 0.2, 0.1, 0.1])
    ruled = rule(_after(rule, tokenizer, "jerry: hi.\n"), scores)
    others = np.exp(ruled[0, cues[1:]])
    assert others.sum() == pytest.approx(0.9)  # jerry's 0.5 went to the others, in their proportions 2:1:1
    assert others / others.sum() == pytest.approx([0.5, 0.25, 0.25])
    assert np.exp(ruled[0, tokenizer.token_id("the")]) == pytest.approx(1e-3)  # words that start no speech: kept


def test_no_direction_is_addressed_to_its_own_speaker():
    tokenizer, rule = _rule()
    assert not _allowed(rule, tokenizer, "elaine: (to", "elaine")
    assert _allowed(rule, tokenizer, "elaine: (to", "jerry")
    assert _allowed(rule, tokenizer, "elaine: i said to", "elaine")  # no direction open
    assert _allowed(rule, tokenizer, "jerry: hi.\nelaine: (to", "jerry")


def test_char_level_cuts_a_name_where_it_tells_from_the_others():
    assert _telling((1, 2, 3), [(1, 2, 3), (1, 2, 4), (5,)]) == 2  # "je-r" against "je-ff": the third tells
    assert _telling((5,), [(1, 2, 3), (5,)]) == 0
    tokenizer, rule = _rule(level="char")
    assert not _allowed(rule, tokenizer, "george: hi.\n", "g")  # george's name is told by its first letter
    assert _allowed(rule, tokenizer, "george: hi.\n", "j")


def test_names_the_vocabulary_cannot_spell_are_left_out():
    tokenizer = WordTokenizer.fit("jerry: hi.\ngeorge: hi.\n")
    rule = turn_taking(tokenizer, ["jerry", "george", "newman"])  # no "newman" and no "to" in the vocabulary
    assert rule is not None and len(rule.names) == 2 and rule.addressed == [(), ()]


def test_a_cue_with_a_direction_is_the_speakers_turn_and_a_joint_name_is_cut_too():
    names = CAST + ["jerry and george"]
    tokenizer = fit_tokenizer(DIALOGUE + ADDRESSED + "jerry and george: hi.\njerry (o. c.): hi.\n", "word")
    rule = turn_taking(tokenizer, names)
    assert not _allowed(rule, tokenizer, "jerry (o. c.): what?\n", "jerry")  # "jerry (...):" was jerry's turn
    assert not _allowed(rule, tokenizer, "jerry: what?\n", "jerry")  # "jerry" opens "jerry and george" too: cut
    assert _allowed(rule, tokenizer, "jerry and george: what?\n", "jerry")  # that was the pair's turn
    assert not _allowed(rule, tokenizer, "jerry (o. c.): (to", "jerry")


@pytest.fixture(scope="module")
def rigged(tmp_path_factory):
    """Word models that want one name by a wide margin everywhere (its output bias): jerry, and elaine."""
    out = {}
    for name in ("jerry", "elaine"):
        folder = tmp_path_factory.mktemp(f"turns-{name}")
        run = make_run(folder / "run", "lstm", "word", extra_text=ADDRESSED)
        model, tokenizer, _ = load_checkpoint(run)
        with torch.no_grad():
            model.decoder.bias[tokenizer.token_id(name)] += 25.0
        save_weights(run, model)
        export_onnx(run, folder / "exported")
        out[name] = (run, folder / "exported")
    return out


def _first_words(writer, prime: str, rules=None) -> set:
    if rules is not None:
        g = Generation(writer, prime, SamplingConfig(max_new_tokens=1, seed=5, num_return_sequences=4), rules=rules)
        g.run()
        texts = g.texts  # what was written after the prime
    else:
        texts = [text[len(prime):] for text in writer.generate(prime, max_new_tokens=1, seed=5, num_return_sequences=4)]
    return {text.split()[0] if text.split() else "" for text in texts}


def test_a_model_that_wants_one_speaker_still_takes_turns(rigged):
    run, exported = rigged["jerry"]
    assert _first_words(scriptrnn.load(run), "jerry: hi.\n", rules=[]) == {"jerry"}  # the rig works
    for writer in (scriptrnn.load(run), load_exported(exported, threads=1)):
        assert _first_words(writer, "jerry: hi.\n") <= {"george", "elaine", "kramer"}  # his share went to them
        assert _first_words(writer, "jerry: hi.\n(pushes him)\n") == {"jerry"}  # a direction between: his turn


def test_a_model_that_wants_its_speaker_addressed_addresses_someone_else(rigged):
    run, exported = rigged["elaine"]
    assert _first_words(scriptrnn.load(run), "elaine: (to", rules=[]) == {"elaine"}  # the rig works
    for writer in (scriptrnn.load(run), load_exported(exported, threads=1)):
        assert "elaine" not in _first_words(writer, "elaine: (to")
        assert _first_words(writer, "jerry: (to") == {"elaine"}
