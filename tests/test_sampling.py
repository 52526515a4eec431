import math

import pytest
import torch

from scriptrnn import SamplingConfig, ScriptRNNError
from scriptrnn.sampling import RepetitionPenalty, Temperature, TopK, TopP, next_tokens

NONE_SEEN = torch.zeros(1, 5, dtype=torch.bool)


def test_temperature_divides():
    scores = torch.tensor([[1.0, 2.0, 4.0, 0.0, -2.0]])
    assert torch.allclose(Temperature(2.0)(NONE_SEEN, scores), scores / 2)


def test_top_k_keeps_k_best():
    scores = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    kept = TopK(2)(NONE_SEEN, scores)
    assert torch.isfinite(kept).tolist() == [[False, True, False, True, False]]


def test_top_p_keeps_the_nucleus_and_always_the_best():
    probs = torch.tensor([[0.5, 0.3, 0.1, 0.06, 0.04]])
    kept = TopP(0.75)(NONE_SEEN, probs.log())
    assert torch.isfinite(kept).tolist() == [[True, True, False, False, False]]
    kept = TopP(0.01)(NONE_SEEN, probs.log())
    assert torch.isfinite(kept).tolist() == [[True, False, False, False, False]]


def test_repetition_penalty_lowers_seen_tokens_only():
    scores = torch.tensor([[2.0, -2.0, 2.0, -2.0, 0.0]])
    seen = torch.tensor([[True, True, False, False, False]])
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
    scores = torch.tensor([[0.1, 3.0, 0.2], [5.0, 0.0, 1.0]])
    seen = torch.zeros(2, 3, dtype=torch.bool)
    assert next_tokens(scores, seen, config.processors(), config.greedy, None).tolist() == [1, 0]


def test_negative_temperature_is_refused():
    with pytest.raises(ScriptRNNError, match="temperature"):
        SamplingConfig(temperature=-0.5).validate()


def test_sampling_respects_top_k_and_seed():
    config = SamplingConfig(top_k=1)
    scores = torch.randn(64, 10)
    seen = torch.zeros(64, 10, dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(next_tokens(scores, seen, config.processors(), False, g), scores.argmax(-1))
    draws = [next_tokens(scores, seen, SamplingConfig().processors(), False, torch.Generator().manual_seed(7))
             for _ in range(2)]
    assert torch.equal(*draws)
    assert not math.isnan(float(scores.sum()))
