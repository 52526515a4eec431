import pytest
import torch

from scriptrnn import ModelConfig, RNNLanguageModel, ScriptRNNError
from scriptrnn.model.network import state_parts


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_shapes_and_state(cell):
    model = RNNLanguageModel(ModelConfig(vocab_size=30, cell=cell, num_layers=2, hidden_size=16, embedding_size=8))
    x = torch.randint(0, 30, (4, 7))
    logits, state = model(x)
    assert logits.shape == (4, 7, 30)
    hidden = model.init_hidden(4)
    if cell == "lstm":
        assert isinstance(hidden, tuple) and hidden[0].shape == (2, 4, 16)
    else:
        assert hidden.shape == (2, 4, 16)
    logits2, _ = model(x, hidden)
    assert logits2.shape == logits.shape


def test_carrying_state_equals_one_long_pass():
    model = RNNLanguageModel(ModelConfig(vocab_size=20, hidden_size=12, embedding_size=6, dropout=0.0)).eval()
    x = torch.randint(0, 20, (2, 10))
    whole, _ = model(x)
    first, state = model(x[:, :6])
    second, _ = model(x[:, 6:], state)
    assert torch.allclose(torch.cat([first, second], 1), whole, atol=1e-5)


def test_parameter_count_matches_the_built_model():
    for tie in (False, True):
        for cell in ("lstm", "gru", "rnn"):
            config = ModelConfig(vocab_size=50, cell=cell, hidden_size=24, embedding_size=16, tie_weights=tie)
            model = RNNLanguageModel(config)
            assert config.parameter_count() == sum(p.numel() for p in model.parameters())


def test_tied_weights_share_the_embedding():
    model = RNNLanguageModel(ModelConfig(vocab_size=40, hidden_size=32, embedding_size=32, tie_weights=True))
    assert model.decoder.weight is model.embedding.weight


@pytest.mark.parametrize("settings, flag", [
    ({"hidden_size": 0}, "--hidden-size"),
    ({"num_layers": -1}, "--layers"),
    ({"cell": "transformer"}, "--cell"),
    ({"dropout": 1.5}, "--dropout"),
    ({"hidden_size": 60_000, "num_layers": 8}, "parameters"),
])
def test_bad_sizes_are_named(settings, flag):
    with pytest.raises(ScriptRNNError, match=flag):
        ModelConfig(vocab_size=10, **settings).validate()


@pytest.mark.parametrize("vocab_size", [1_000, 5_000, 25_000])
def test_adaptive_softmax_scores_are_a_distribution_and_its_loss_agrees(vocab_size):
    config = ModelConfig(vocab_size=vocab_size, softmax="adaptive", hidden_size=16, embedding_size=8, dropout=0.0)
    model = RNNLanguageModel(config).eval()
    assert config.parameter_count() == sum(p.numel() for p in model.parameters())
    x = torch.randint(0, vocab_size, (3, 5))
    y = torch.randint(0, vocab_size, (3, 5))
    log_probs, _ = model(x)  # (B, T, V)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(3, 5), atol=1e-4)
    loss, _ = model(x, targets=y)
    expected = -log_probs.gather(-1, y[..., None]).mean()
    assert torch.allclose(loss, expected, atol=1e-4)


def test_full_softmax_loss_is_cross_entropy_of_the_logits():
    model = RNNLanguageModel(ModelConfig(vocab_size=30, hidden_size=16, embedding_size=8, dropout=0.0)).eval()
    x, y = torch.randint(0, 30, (2, 6)), torch.randint(0, 30, (2, 6))
    logits, _ = model(x)
    loss, _ = model(x, targets=y)
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()))


@pytest.mark.parametrize("settings, message", [
    ({"vocab_size": 500, "softmax": "adaptive"}, "at least 1,000"),
    ({"vocab_size": 5000, "softmax": "adaptive", "tie_weights": True}, "--no-tie-weights"),
    ({"vocab_size": 5000, "softmax": "hierarchical"}, "--softmax"),
])
def test_adaptive_softmax_settings_are_checked(settings, message):
    with pytest.raises(ScriptRNNError, match=message):
        ModelConfig(**settings).validate()


@pytest.mark.parametrize("settings", [{"vocab_size": 30}, {"vocab_size": 1_500, "softmax": "adaptive"},
                                      {"vocab_size": 30, "tie_weights": True, "cell": "gru"}])
def test_last_gives_the_last_positions_logits_and_the_same_state(settings):
    model = RNNLanguageModel(ModelConfig(hidden_size=16, embedding_size=8, **settings)).eval()
    x = torch.randint(0, settings["vocab_size"], (2, 7))
    full, full_state = model(x)
    last, last_state = model(x, last=True)
    assert last.shape == (2, 1, settings["vocab_size"])
    assert torch.allclose(last[:, 0], full[:, -1], atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(state_parts(full_state), state_parts(last_state)))
