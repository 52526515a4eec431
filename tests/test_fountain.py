"""Fountain in and out: reading screenplays, writing them back, rendering through screenplain."""

import io

import pytest
from screenplain.parsers import fountain as screenplain_parser
from screenplain.types import Action, Dialog, DualDialog, Slug, Transition

from scriptrnn.data.corpus import find_speakers, read_corpus
from scriptrnn.errors import ScriptRNNError
from scriptrnn.data.fountain import format_script, fountain_to_dialogue, render, to_fountain

# Every element the issue names, plus the markers that force a kind and what gets dropped.
PILOT = """Title: The Pilot
Author: Test Writer
Draft date:
    1 May

INT. JERRY'S APARTMENT - DAY

Jerry stands at the window.
He sighs.

JERRY
(to himself)
What is the deal
with airline food?

GEORGE (O.S.)
I am not a man of the sea!

@McCLANE
Yippee-ki-yay.

[[a note nobody prints]]

CUT TO:

.FLASHBACK - THE BEACH

/* a cut scene
that stays cut */

GEORGE
(beat)
I was a marine biologist.
(quietly)
Not really.

ELAINE ^
Get out!

> FADE OUT.

> THE END <

EXT. STREET - NIGHT

!INT. ERIOR DESIGN is her passion.

# Act Two

= Where it all goes wrong.
"""

PILOT_AS_DIALOGUE = """[INT. JERRY'S APARTMENT - DAY]
[Jerry stands at the window. He sighs.]
JERRY: (to himself) What is the deal with airline food?
GEORGE (O.S.): I am not a man of the sea!
McCLANE: Yippee-ki-yay.
[CUT TO:]

[.FLASHBACK - THE BEACH]
GEORGE: (beat) I was a marine biologist. (quietly) Not really.
ELAINE: Get out!
[> FADE OUT.]
[> THE END <]

[EXT. STREET - NIGHT]
[!INT. ERIOR DESIGN is her passion.]
"""


def structure(fountain_text: str) -> list[tuple[str, str]]:
    """What screenplain (the renderer) reads: each paragraph's kind and its words."""
    out = []
    for para in screenplain_parser.parse(io.StringIO(fountain_text)):
        dialogs = [para.left, para.right] if isinstance(para, DualDialog) else [para]
        for p in dialogs:
            if isinstance(p, Dialog):
                out.append(("dialog", str(p.character) + " | " + " / ".join(
                    ("P:" if paren else "") + str(line) for paren, line in p.blocks)))
            elif isinstance(p, (Slug, Transition, Action)):
                out.append((type(p).__name__.lower(), " ".join(str(line) for line in p.lines)))
    return out


def test_reading_keeps_every_element_in_one_line_each():
    assert fountain_to_dialogue(PILOT) == PILOT_AS_DIALOGUE


def test_round_trip_reads_back_the_same_screenplay():
    written = to_fountain(fountain_to_dialogue(PILOT))
    # Our reading of what we wrote is what we read the first time...
    assert fountain_to_dialogue(written) == PILOT_AS_DIALOGUE
    # ...and the renderer sees the same elements, apart from what the reader drops on purpose
    # (title page, notes, boneyard, sections, synopses, dual-dialogue pairing, lines in a paragraph).
    original = structure(PILOT)
    assert structure(written) == [
        ("slug", "INT. JERRY'S APARTMENT - DAY"),
        ("action", "Jerry stands at the window. He sighs."),
        ("dialog", "JERRY | P:(to himself) / What is the deal with airline food?"),
        ("dialog", "GEORGE (O.S.) | I am not a man of the sea!"),
        ("dialog", "McCLANE | Yippee-ki-yay."),
        ("transition", "CUT TO:"),
        ("slug", "FLASHBACK - THE BEACH"),
        ("dialog", "GEORGE | P:(beat) / I was a marine biologist. / P:(quietly) / Not really."),
        ("dialog", "ELAINE | Get out!"),
        ("transition", "FADE OUT."),
        ("action", "THE END"),
        ("slug", "EXT. STREET - NIGHT"),
        ("action", "INT. ERIOR DESIGN is her passion."),
    ]
    # The kinds, in order, are exactly screenplain's reading of the original file.
    assert [k for k, _ in original] == [k for k, _ in structure(written)]


def test_writing_forces_kinds_that_plain_text_would_lose():
    text = "[ext. is what she said]\njerry: i know. (beat) you know?\n[Act natural.]\n[HE RUNS TO:]\n"
    written = to_fountain(text, sentence_case=True)
    kinds = [k for k, _ in structure(written)]
    assert kinds == ["slug", "dialog", "action", "transition"]
    assert "JERRY\nI know.\n(beat)\nYou know?" in written
    # A first paragraph holding a colon is not taken for a title page.
    assert structure(to_fountain("[INT. HOUSE: NIGHT]\n"))[0] == ("slug", "INT. HOUSE: NIGHT")
    assert structure(to_fountain("[Note: he is late.]\n")) == [("action", "Note: he is late.")]


def test_the_plays_layout_becomes_a_screenplay():
    plays = ("[ACT I]\n[SCENE I. A desert place.]\n[Thunder. Enter three Witches]\n"
             "FIRST WITCH: When shall we three meet again?\n")
    assert structure(to_fountain(plays)) == [
        ("slug", "ACT I"), ("slug", "SCENE I. A DESERT PLACE."), ("action", "Thunder. Enter three Witches"),
        ("dialog", "FIRST WITCH | When shall we three meet again?")]


def test_fountain_files_read_as_a_dialogue_corpus(tmp_path):
    (tmp_path / "pilot.fountain").write_text(PILOT.replace("\n", "\r\n"), encoding="utf-8")
    corpus = read_corpus(tmp_path / "pilot.fountain")
    assert corpus.text == PILOT_AS_DIALOGUE
    assert set(find_speakers(corpus.text)) == {"JERRY", "GEORGE", "McCLANE", "ELAINE"}


@pytest.mark.parametrize("fmt", ["pdf", "html"])
def test_rendering_through_screenplain(fmt):
    fountain = to_fountain(PILOT_AS_DIALOGUE)
    data = render(fountain, fmt)
    if fmt == "pdf":
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
        assert b"/Type /Page" in data
    else:
        html = data.decode("utf-8")
        assert html.startswith("<!DOCTYPE html>")
        assert '<div class="dialog">' in html and "JERRY" in html and "airline food" in html
        assert 'class="slug"' in html or "<h6" in html


def test_format_script_puts_sequences_on_pages_of_their_own():
    fountain = format_script(["jerry: one.\n", "george: two.\n"], "fountain").decode()
    assert [k for k, _ in structure(fountain)] == ["dialog", "dialog"]
    assert "\n===\n" in fountain
    with pytest.raises(ScriptRNNError, match="--format must be one of text, fountain, html, pdf"):
        format_script(["x"], "docx")


def test_a_transcripts_setting_lines_become_scene_headings():
    transcript = ("[setting: monk's cafe]\njerry: (to george) what?\n\n"
                  "[setting: jerry's apartment. jerry is at the fridge.]\n[location: j. peterman's office]\n"
                  "[scene: at elaine's]\n[Note: he is late.]\n")
    written = to_fountain(transcript, sentence_case=True)
    assert structure(written) == [
        ("slug", "MONK'S CAFE"), ("dialog", "JERRY | P:(to george) / What?"),
        ("slug", "JERRY'S APARTMENT"), ("action", "Jerry is at the fridge."),
        ("slug", "J. PETERMAN'S OFFICE"), ("slug", "AT ELAINE'S"), ("action", "Note: he is late.")]
    assert written.startswith("\n.MONK'S CAFE\n")  # a forced heading: the transcript says no INT. or EXT.
    # Read back, each is a heading; and a Fountain action that reads like a setting stays action.
    assert fountain_to_dialogue(written).startswith("[.MONK'S CAFE]\n")
    assert fountain_to_dialogue("\nSetting: the beach\n") == "[!Setting: the beach]\n"
    assert structure(to_fountain(fountain_to_dialogue("\nSetting: the beach\n"))) == [("action", "Setting: the beach")]
