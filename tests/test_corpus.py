"""Reading corpora: formats, folders, encodings, friendly errors and stats."""

import pytest

from scriptrnn.data.corpus import (
    Corpus,
    CorpusStats,
    corpus_stats,
    find_speakers,
    format_stats,
    read_corpus,
)
from scriptrnn.data.sources import load_corpus
from scriptrnn.errors import ScriptRNNError

DIALOGUE = "jerry: hello there.   \n\ngeorge: hi.\n\njerry: bye now, george!\n"


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


# ------------------------------------------------------------------- text files


def test_plain_text_is_read_as_is(tmp_path):
    write(tmp_path / "book.txt", "It was a dark night.\n\nThe end.")
    corpus = read_corpus(tmp_path / "book.txt")
    assert corpus == Corpus(name="book", text="It was a dark night.\n\nThe end.\n")


def test_dialogue_file_keeps_blank_lines_and_strips_trailing_spaces(tmp_path):
    write(tmp_path / "scripts", DIALOGUE)  # no extension: still text
    corpus = read_corpus(str(tmp_path / "scripts"))
    assert corpus.name == "scripts"
    assert corpus.text == "jerry: hello there.\n\ngeorge: hi.\n\njerry: bye now, george!\n"


def test_line_ends_are_normalised(tmp_path):
    write(tmp_path / "dos.txt", "a: one \r\nb: two\rc: three\r\n")
    assert read_corpus(tmp_path / "dos.txt").text == "a: one\nb: two\nc: three\n"


def test_utf8_bom_is_dropped(tmp_path):
    write(tmp_path / "bom.txt", "\ufeffjerry: hi".encode("utf-8"))
    assert read_corpus(tmp_path / "bom.txt").text == "jerry: hi\n"


def test_several_paths_are_joined_and_named(tmp_path):
    write(tmp_path / "a.txt", "first")
    write(tmp_path / "b.md", "second\n")
    corpus = read_corpus([tmp_path / "a.txt", tmp_path / "b.md"])
    assert corpus.name == "a+b"
    assert corpus.text == "first\n\nsecond\n"


# ------------------------------------------------------------------------- CSV


def test_csv_with_default_columns(tmp_path):
    csv_text = (
        ",Character,Dialogue,Season\n"
        '0,JERRY,"Hello,\n  Newman.",1\n'
        "1,NEWMAN,,1\n"  # empty dialogue: skipped
        "2,GEORGE,  I'm   out.  ,1\n"
    )
    write(tmp_path / "seinfeld.csv", csv_text)
    corpus = read_corpus(tmp_path / "seinfeld.csv")
    assert corpus.name == "seinfeld"
    assert corpus.text == "JERRY: Hello, Newman.\nGEORGE: I'm out.\n"


def test_csv_with_custom_columns(tmp_path):
    write(tmp_path / "lines.csv", "who,what\r\nAnn,Hi Bob\r\nBob,Hi Ann\r\n")
    corpus = read_corpus(tmp_path / "lines.csv", speaker_column="who", dialogue_column="what")
    assert corpus.text == "Ann: Hi Bob\nBob: Hi Ann\n"


def test_csv_missing_column_names_file_column_and_columns(tmp_path):
    write(tmp_path / "lines.csv", "Speaker,Line\nAnn,Hi\n")
    with pytest.raises(ScriptRNNError) as err:
        read_corpus(tmp_path / "lines.csv")
    message = str(err.value)
    assert "lines.csv" in message and "'Character'" in message
    assert "'Speaker'" in message and "'Line'" in message
    assert "\n" not in message


# ---------------------------------------------------------------------- folders


def test_folder_is_read_recursively_in_order_skipping_hidden_and_binary(tmp_path):
    folder = tmp_path / "season1"
    write(folder / "b.txt", "b: second")
    write(folder / "a.txt", "a: first")
    write(folder / "sub" / "c.csv", "Character,Dialogue\nc,third\n")
    write(folder / ".notes.txt", "secret: hidden")
    write(folder / ".git" / "config", "hidden: folder")
    write(folder / "image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    corpus = read_corpus(folder)
    assert corpus.name == "season1"
    assert corpus.text == "a: first\n\nb: second\n\nc: third\n"


def test_folder_with_nothing_readable(tmp_path):
    write(tmp_path / "empty" / ".hidden", "x")
    write(tmp_path / "empty" / "blob.bin", b"\x00\x01\x02")
    with pytest.raises(ScriptRNNError, match="no readable text files"):
        read_corpus(tmp_path / "empty")


def test_named_binary_file_is_refused(tmp_path):
    write(tmp_path / "model.bin", b"abc\x00def")
    with pytest.raises(ScriptRNNError, match="looks binary"):
        read_corpus(tmp_path / "model.bin")


# ---------------------------------------------------------------- friendly errors


def test_missing_path(tmp_path):
    with pytest.raises(ScriptRNNError, match="no such file or folder: .*nope.txt"):
        read_corpus(tmp_path / "nope.txt")


@pytest.mark.parametrize("content", ["", "  \n\t\n\r\n   "])
def test_empty_or_whitespace_file(tmp_path, content):
    write(tmp_path / "blank.txt", content)
    with pytest.raises(ScriptRNNError, match="corpus is empty"):
        read_corpus(tmp_path / "blank.txt")


def test_non_utf8_byte_names_file_and_offset(tmp_path):
    write(tmp_path / "Seinfeld.txt", b"jerry: caf\xe9!\n")
    with pytest.raises(ScriptRNNError) as err:
        read_corpus(tmp_path / "Seinfeld.txt")
    message = str(err.value)
    assert "Seinfeld.txt" in message
    assert "byte 0xe9 at offset 10" in message
    assert "--encoding" in message


def test_error_offset_counts_the_bom(tmp_path):
    write(tmp_path / "bom.txt", b"\xef\xbb\xbfab\xff")
    with pytest.raises(ScriptRNNError, match="byte 0xff at offset 5"):
        read_corpus(tmp_path / "bom.txt")


def test_latin1_encoding_works(tmp_path):
    write(tmp_path / "old.txt", b"jerry: caf\xe9!\n")
    assert read_corpus(tmp_path / "old.txt", encoding="latin-1").text == "jerry: café!\n"


@pytest.mark.parametrize("encoding", ["klingon-8", "rot13"])
def test_unknown_encoding(tmp_path, encoding):
    write(tmp_path / "a.txt", "hi")
    with pytest.raises(ScriptRNNError, match="unknown encoding"):
        read_corpus(tmp_path / "a.txt", encoding=encoding)


def test_empty_string_path_is_not_the_working_directory():
    with pytest.raises(ScriptRNNError, match="empty string"):
        read_corpus([""])


# ------------------------------------------------------------------ load_corpus


def test_load_corpus_reads_paths(tmp_path):
    write(tmp_path / "a.txt", "a: hi")
    assert load_corpus([tmp_path / "a.txt"]).text == "a: hi\n"


def test_load_corpus_refuses_genres_with_paths(tmp_path):
    write(tmp_path / "a.txt", "a: hi")
    with pytest.raises(ScriptRNNError, match="genres"):
        load_corpus([tmp_path / "a.txt"], genres=["tragedies"])


def test_load_corpus_unknown_builtin_lists_known():
    with pytest.raises(ScriptRNNError, match="unknown built-in corpus 'seinfeld'.*shakespeare"):
        load_corpus(corpus="seinfeld")


# ------------------------------------------------------------------------ stats


def test_find_speakers_counts_names_and_ignores_other_lines():
    text = (
        "jerry: hi.\n"
        "george (to jerry): hey.\n"  # a delivery note is not a new speaker
        "[SCENE I. A room: dark]\n"  # bracketed lines are directions
        "  indented: not a speech\n"
        "at 10:30 we left.\n"  # no space after the colon
        "JERRY: different case, different name\n"
        "jerry: again\n"
    )
    assert find_speakers(text) == {"jerry": 2, "george": 1, "JERRY": 1}


def test_stats_on_a_tiny_dialogue():
    stats = corpus_stats(Corpus("tiny", "jerry: hello there.\n\ngeorge: hi.\n\njerry: bye now, george!\n"))
    assert stats == CorpusStats(
        characters=58,
        unique_words=8,  # "jerry:" twice
        lines=3,  # blank lines do not count
        speakers=2,
        words_per_line=3.0,
        words=9,
        top_speakers=(("jerry", 2), ("george", 1)),
        name="tiny",
    )
    report = format_stats(stats)
    assert "Roughly the number of unique words: 8" in report
    assert "Number of lines (non-blank): 3" in report
    assert "Average number of words in each line: 3.00" in report
    assert "Speakers: 2" in report and "jerry (2)" in report


def test_stats_on_prose_have_no_speakers():
    stats = corpus_stats(Corpus("prose", "Call me Ishmael. Some years ago\n"))
    assert stats.speakers == 0 and stats.top_speakers == ()
    assert "Most speeches" not in format_stats(stats)
