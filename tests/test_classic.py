import torch
from torch import nn

from scriptrnn.classic import RNN, batch_data, forward_back_prop


def test_batch_data_pairs_each_window_with_the_next_word():
    loader = batch_data(list(range(50)), sequence_length=5, batch_size=10, shuffle=False)
    x, y = next(iter(loader))
    assert x.shape == (10, 5) and y.shape == (10,)
    assert x[0].tolist() == [0, 1, 2, 3, 4] and y[0].item() == 5
    assert (y == x[:, -1] + 1).all()
    assert all(len(bx) == 10 for bx, _ in loader)  # full batches only


def test_rnn_forward_and_init_hidden():
    rnn = RNN(vocab_size=20, output_size=20, embedding_dim=8, hidden_dim=12, n_layers=2, dropout=0.5)
    hidden = rnn.init_hidden(3)
    assert hidden[0].shape == (2, 3, 12) and hidden[1].shape == (2, 3, 12)
    out, hidden = rnn(torch.randint(0, 20, (3, 6)), hidden)
    assert out.shape == (3, 20)


def test_forward_back_prop_learns_and_detaches():
    torch.manual_seed(0)
    rnn = RNN(vocab_size=10, output_size=10, embedding_dim=8, hidden_dim=16, n_layers=1, dropout=0.0)
    optimizer = torch.optim.Adam(rnn.parameters(), lr=0.01)
    criterion = nn.CrossEntropyLoss()
    inp = torch.randint(0, 10, (4, 5))
    target = inp[:, -1]  # learnable: repeat the last word
    hidden = rnn.init_hidden(4)
    losses = []
    for _ in range(60):
        loss, hidden = forward_back_prop(rnn, optimizer, criterion, inp, target, rnn.init_hidden(4))
        assert isinstance(loss, float)
        losses.append(loss)
    assert losses[-1] < losses[0] / 3
    # The returned state can be fed back without backpropagating into the previous step.
    loss, hidden = forward_back_prop(rnn, optimizer, criterion, inp, target, hidden)
    forward_back_prop(rnn, optimizer, criterion, inp, target, hidden)
