import numpy as np
import pytest

from scriptrnn import ScriptRNNError, create_lookup_tables, token_lookup
from scriptrnn.tokenizer import UNK, CharTokenizer, WordTokenizer, fit_tokenizer, tokenizer_from_dict


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


def test_unknown_word_is_a_clear_error():
    tok = WordTokenizer.fit("hello there")
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
