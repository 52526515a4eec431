import json

import numpy as np
import pytest

from scriptrnn import ScriptRNNError, create_lookup_tables, token_lookup
from scriptrnn.data.tokenizer import UNK, CharTokenizer, WordTokenizer, fit_tokenizer, tokenizer_from_dict


def test_token_lookup_is_the_course_table():
    table = token_lookup()
    assert set(table) == {".", ",", '"', ";", "!", "?", "(", ")", "-", "\n"}
    for token in table.values():
        assert " " not in token
        assert not any(symbol in token for symbol in table)
        assert token.isalnum()
    assert len(set(table.values())) == 10


def test_create_lookup_tables_most_frequent_first_and_inverse():
    words = "the cat saw the dog and the cat".split()
    vocab_to_int, int_to_vocab = create_lookup_tables(words)
    assert vocab_to_int["the"] == 0 and vocab_to_int["cat"] == 1
    assert len(vocab_to_int) == 5
    assert all(int_to_vocab[i] == w for w, i in vocab_to_int.items())
    assert sorted(int_to_vocab) == list(range(5))


def test_word_level_round_trip_reads_like_the_corpus():
    text = 'jerry: what? i don\'t know.\ngeorge: (sighs) a "big" no-mans-land, yes; fine!\n'
    tok = WordTokenizer.fit(text)
    assert tok.decode(tok.encode(text)) == text


def test_word_level_lowercases_unless_told():
    assert WordTokenizer.fit("Jerry: Hi.").decode(WordTokenizer.fit("Jerry: Hi.").encode("Jerry: Hi.")) == "jerry: hi."
    kept = WordTokenizer.fit("Jerry: Hi.", lowercase=False)
    assert kept.decode(kept.encode("Jerry: Hi.")) == "Jerry: Hi."


def test_word_vocab_is_ordered_by_frequency():
    tok = WordTokenizer.fit("b a a c a b.")
    assert tok.vocab[:3] == ["a", "b", "c"]


def test_min_count_folds_rare_words_into_unk():
    tok = WordTokenizer.fit("a a a b b c d", min_count=2)
    assert UNK in tok.vocab and "c" not in tok.vocab
    assert tok.decode(tok.encode("a c")) == f"a {UNK}"


def test_every_word_vocabulary_has_unk_even_keeping_every_word():
    tok = WordTokenizer.fit("hello there hello <unk> <unk> <unk>")
    assert tok.vocab == [UNK, "hello", "there"]  # in its place by frequency ("<unk>" in the text counts)
    assert list(tok.encode("hello zebra")) == [1, 0]
    assert WordTokenizer.fit("hello there").vocab[-1] == UNK  # nothing folded: last, never trained on


def test_unknown_word_without_unk_is_a_clear_error():
    tok = WordTokenizer(["hello", "there"])  # a vocabulary from before every one had <unk>
    with pytest.raises(ScriptRNNError, match="'zebra' is not in the model's vocabulary"):
        tok.encode("hello zebra")
    assert list(tok.encode("hello zebra", strict=False)) == list(tok.encode("hello"))


def test_char_round_trip_and_unknown_character():
    text = "ROMEO: O, she doth teach the torches to burn bright!\n— ünïcödé ✓"
    tok = CharTokenizer.fit(text)
    assert tok.decode(tok.encode(text)) == text
    with pytest.raises(ScriptRNNError, match="not in the model's vocabulary"):
        tok.encode("xyz")


def test_ids_are_compact():
    assert CharTokenizer.fit("abc").encode("abc").dtype == np.uint16


def test_saved_and_loaded_tokenizers_agree():
    for tok in (CharTokenizer.fit("hello, world\n"), WordTokenizer.fit("hello, world\n")):
        again = tokenizer_from_dict(tok.to_dict())
        assert again.vocab == tok.vocab
        assert list(again.encode("hello, world\n")) == list(tok.encode("hello, world\n"))


def test_bad_tokenizer_files_are_refused():
    with pytest.raises(ScriptRNNError):
        tokenizer_from_dict({"level": "byte", "vocab": ["a"]})
    with pytest.raises(ScriptRNNError):
        tokenizer_from_dict({"level": "char", "vocab": []})
    with pytest.raises(ScriptRNNError):
        fit_tokenizer("abc", "sentence")


def test_streaming_decoder_matches_decode():
    tok = WordTokenizer.fit('kramer: "giddy up," i said.\n')
    ids = tok.encode('kramer: "giddy up," i said.\n')
    decoder = tok.decoder()
    assert "".join(decoder.step(int(i)) for i in ids) == tok.decode(ids)


# ------------------------------------------------------------- round trips, any text

from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SYMBOLS = [".", ",", '"', ";", "!", "?", "(", ")", "-", "\n", ":", "[", "]"]
SYMBOL_NAMES = set(token_lookup().values()) | {"xxcolon", "xxlbracket", "xxrbracket"}


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec=None), min_size=1, max_size=200))
def test_char_level_round_trips_any_unicode(text):
    tok = CharTokenizer.fit(text)
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert tok.decode(ids) == text
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        # A lone surrogate cannot be written as UTF-8: a saved vocabulary holding one is refused on load.
        with pytest.raises(ScriptRNNError, match="lone surrogate"):
            tokenizer_from_dict(tok.to_dict())
    else:
        assert tokenizer_from_dict(tok.to_dict()).decode(ids) == text


@given(st.text(alphabet=st.characters(categories=["Cs", "Lu", "Zs"]), min_size=1, max_size=20))
def test_char_level_unknown_characters_are_named_not_crashed(text):
    tok = CharTokenizer.fit("abc")  # lone surrogates included: a str from JSON can hold them
    assume(set(text) - set("abc"))
    with pytest.raises(ScriptRNNError, match="not in the model's vocabulary"):
        tok.encode(text)
    assert len(tok.encode(text, strict=False)) == 0


def _is_word(w: str, lowercase: bool) -> bool:
    return (w not in SYMBOL_NAMES and w != UNK and not any(c in SYMBOLS or c.isspace() for c in w)
            and (w == w.lower() or not lowercase))


WORDS = st.text(alphabet=st.characters(categories=["Ll", "Lu", "Nd", "Po", "Lo"], codec=None),
                min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(WORDS, st.sampled_from(SYMBOLS)), min_size=1, max_size=40), st.booleans(),
       st.lists(st.sampled_from([" ", "  ", "\t", " \t "]), min_size=40, max_size=40))
def test_word_level_round_trips_vocabulary_words_and_punctuation(tokens, lowercase, gaps):
    tokens = [t.lower() if lowercase else t for t in tokens]
    assume(all(t in SYMBOLS or _is_word(t, lowercase) for t in tokens))
    # However the words and marks are spaced, they come back as the same tokens...
    spaced = "".join(t + g for t, g in zip(tokens, gaps))
    tok = WordTokenizer.fit(spaced, lowercase=lowercase)
    ids = tok.encode(spaced)
    assert [tok.names.get(tok.vocab[i], tok.vocab[i]) for i in ids] == tokens
    # ...and the text decoding writes is a fixed point: it encodes to the same ids and decodes to itself.
    text = tok.decode(ids)
    assert list(tok.encode(text)) == list(ids)
    assert tok.decode(tok.encode(text)) == text
    again = tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again.decode(again.encode(text)) == text


# ------------------------------------------------------------- damaged tokenizer.json (found by the fuzzer)

@pytest.mark.parametrize("data, match", [
    ({"level": "char", "vocab": ["", "a"]}, "not one character"),
    ({"level": "char", "vocab": ["ab", "c"]}, "not one character"),
    ({"level": "char", "vocab": ["a", "a"]}, "repeats"),
    ({"level": "word", "vocab": ["a", "b"], "symbols": {".": ["x"]}}, "symbols"),
    ({"level": "word", "vocab": ["a", "b"], "symbols": {"": None}}, "symbols"),
    ({"level": "word", "vocab": ["a", "b"], "symbols": {"ab": "xxab"}}, "symbols"),
    ({"level": "word", "vocab": ["a", "b"], "symbols": {".": "x y"}}, "symbols"),
    ({"level": "word", "vocab": ["a", "b"], "symbols": {".": "xx", ",": "xx"}}, "symbols"),
    ({"level": "word", "vocab": ["a", "b"], "symbols": {}, "lowercase": "yes"}, "lowercase"),
    (["char", "a"], "JSON object"),
])
def test_damaged_tokenizer_files_are_one_line_errors(data, match):
    with pytest.raises(ScriptRNNError, match=match):
        tokenizer_from_dict(data)


def test_char_encoding_a_large_text_is_one_gather():
    text = "jerry: hello there.\n" * 50_000  # 1 MB: the 100 MB case runs in about a second
    tok = CharTokenizer.fit(text)
    ids = tok.encode(text + "\U0010ffff", strict=False)
    assert len(ids) == len(text) and tok.decode(ids[:20]) == text[:20]
