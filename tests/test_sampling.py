import math

import numpy as np
import pytest

from scriptrnn import SamplingConfig, ScriptRNNError
from scriptrnn.generate.sampling import RepetitionPenalty, Temperature, TopK, TopP, Uniforms, next_tokens

NONE_SEEN = np.zeros((1, 5), dtype=bool)


def test_temperature_divides():
    scores = np.array([[1.0, 2.0, 4.0, 0.0, -2.0]])
    assert np.allclose(Temperature(2.0)(NONE_SEEN, scores), scores / 2)


def test_top_k_keeps_k_best():
    scores = np.array([[1.0, 5.0, 3.0, 4.0, 2.0]])
    kept = TopK(2)(NONE_SEEN, scores)
    assert np.isfinite(kept).tolist() == [[False, True, False, True, False]]


def test_top_p_keeps_the_nucleus_and_always_the_best():
    probs = np.array([[0.5, 0.3, 0.1, 0.06, 0.04]])
    kept = TopP(0.75)(NONE_SEEN, np.log(probs))
    assert np.isfinite(kept).tolist() == [[True, True, False, False, False]]
    kept = TopP(0.01)(NONE_SEEN, np.log(probs))
    assert np.isfinite(kept).tolist() == [[True, False, False, False, False]]


def test_repetition_penalty_lowers_seen_tokens_only():
    scores = np.array([[2.0, -2.0, 2.0, -2.0, 0.0]])
    seen = np.array([[True, True, False, False, False]])
    out = RepetitionPenalty(2.0)(seen, scores)
    assert out.tolist() == [[1.0, -4.0, 2.0, -2.0, 0.0]]


@pytest.mark.parametrize("make, bad, name", [
    (Temperature, -1.0, "temperature"), (Temperature, 0.0, "temperature"), (TopK, 0, "top_k"),
    (TopP, 0.0, "top_p"), (TopP, 1.5, "top_p"), (RepetitionPenalty, 0.0, "repetition_penalty"),
])
def test_bad_values_name_the_parameter(make, bad, name):
    with pytest.raises(ScriptRNNError, match=name):
        make(bad)


def test_order_is_penalty_temperature_top_k_top_p():
    config = SamplingConfig(temperature=0.7, top_k=5, top_p=0.9, repetition_penalty=1.2)
    assert [type(p) for p in config.processors()] == [RepetitionPenalty, Temperature, TopK, TopP]


def test_temperature_zero_is_greedy():
    config = SamplingConfig(temperature=0.0).validate()
    scores = np.array([[0.1, 3.0, 0.2], [5.0, 0.0, 1.0]])
    seen = np.zeros((2, 3), dtype=bool)
    assert next_tokens(scores, seen, config.processors(), config.greedy, None).tolist() == [1, 0]


def test_negative_temperature_is_refused():
    with pytest.raises(ScriptRNNError, match="temperature"):
        SamplingConfig(temperature=-0.5).validate()


def test_sampling_respects_top_k_and_seed():
    config = SamplingConfig(top_k=1)
    scores = np.random.default_rng(0).standard_normal((64, 10)).astype(np.float32)
    seen = np.zeros((64, 10), dtype=bool)
    assert np.array_equal(next_tokens(scores, seen, config.processors(), False, Uniforms(0)), scores.argmax(-1))
    draws = [next_tokens(scores, seen, SamplingConfig().processors(), False, Uniforms(7)) for _ in range(2)]
    assert np.array_equal(*draws)


@pytest.mark.parametrize("seed", [0, 7, 2**32 + 5, 2**64 - 1])
def test_a_seed_draws_what_torch_rand_drew(seed):
    # Earlier versions drew with torch.rand: a seed must keep writing the same text.
    torch = pytest.importorskip("torch")
    mine, theirs = Uniforms(seed), torch.Generator().manual_seed(seed)
    for n in (1, 3, 16, 1024):
        assert np.array_equal(mine(n), torch.rand(n, dtype=torch.float64, generator=theirs).numpy())


# ------------------------------------------------------------- any scores at all

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

from scriptrnn.generate.sampling import probabilities, safe_softmax  # noqa: E402

INF, NAN = math.inf, math.nan
ANY_FLOAT32 = st.one_of(st.floats(width=32, allow_nan=True, allow_infinity=True),
                        st.sampled_from([INF, -INF, NAN, 3.4e38, -3.4e38, 1e30, -1e30, 0.0]))
SCORES = st.integers(1, 4).flatmap(lambda n: st.integers(1, 12).flatmap(
    lambda v: arrays("float32", (n, v), elements=ANY_FLOAT32)))
CONFIGS = st.builds(SamplingConfig,
                    temperature=st.one_of(st.just(0.0), st.floats(1e-3, 100.0)),
                    top_k=st.one_of(st.none(), st.integers(1, 20)),
                    top_p=st.one_of(st.none(), st.floats(1e-6, 1.0, exclude_min=True)),
                    repetition_penalty=st.one_of(st.none(), st.floats(0.01, 100.0)))


def assert_distribution(probs):
    assert np.isfinite(probs).all()
    assert (probs >= 0).all()
    assert np.allclose(probs.sum(-1), 1.0, atol=1e-5)


@settings(max_examples=300, deadline=None)
@given(SCORES, CONFIGS, st.data())
def test_any_scores_give_a_valid_distribution_and_a_possible_token(scores, config, data):
    seen = data.draw(arrays(bool, scores.shape))
    processors = config.validate().processors()
    probs = probabilities(scores, seen, processors)
    assert_distribution(probs)
    token = next_tokens(scores, seen, processors, config.greedy, Uniforms(0))
    assert token.shape == (scores.shape[0],)
    if not config.greedy:
        assert (np.take_along_axis(probs, token[:, None], axis=1) > 0).all()  # never a ruled-out token


@settings(max_examples=200, deadline=None)
@given(SCORES)
def test_each_transform_keeps_nan_out(scores):
    scores = np.nan_to_num(scores, nan=0.0, posinf=INF, neginf=-INF).astype(np.float64)
    seen = np.ones_like(scores, dtype=bool)
    for process in (RepetitionPenalty(1.3), Temperature(0.01), TopK(2), TopP(0.5)):
        out = process(seen, scores)
        assert not np.isnan(out).any(), process
        assert_distribution(safe_softmax(out))


def test_rows_softmax_cannot_handle():
    scores = np.array([[-INF, -INF, -INF], [NAN, NAN, NAN], [INF, 1.0, INF], [NAN, 0.0, -INF]])
    expected = np.array([[1 / 3] * 3, [1 / 3] * 3, [0.5, 0.0, 0.5], [0.0, 1.0, 0.0]])
    assert np.allclose(safe_softmax(scores), expected)
    seen = np.zeros((4, 3), dtype=bool)
    for greedy in (False, True):  # plain softmax and a draw fail on these rows
        assert next_tokens(scores, seen, SamplingConfig().processors(), greedy, None).shape == (4,)


def test_huge_scores_over_a_small_temperature_keep_their_order():
    scores = np.array([[3e38, 1e38, 0.0]], dtype=np.float32)  # / 0.01 overflows float32
    config = SamplingConfig(temperature=0.01, top_p=0.9)
    assert probabilities(scores, np.zeros((1, 3), dtype=bool), config.processors()).tolist() == [[1, 0, 0]]


def test_zero_probability_tokens_are_never_drawn():
    probs = np.array([[0.0, 0.5, 0.0, 0.5, 0.0]] * 3)
    from scriptrnn.generate.sampling import draw

    assert draw(probs, np.array([0.0, 0.5, 1.0 - 2**-53])).tolist() == [1, 3, 3]


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, True])
def test_seed_out_of_range_is_refused(seed):
    with pytest.raises(ScriptRNNError, match="seed"):
        SamplingConfig(seed=seed).validate()


def test_greedy_still_checks_every_setting():
    for bad in ({"top_k": 0}, {"top_p": 5.0}):
        with pytest.raises(ScriptRNNError):
            SamplingConfig(do_sample=False, **bad).validate()
