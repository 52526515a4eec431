import numpy as np
import pytest

from scriptrnn import ScriptRNNError
from scriptrnn.data.batching import StreamBatches, split_ids


def test_split_holds_out_the_end():
    ids = np.arange(100)
    train, val = split_ids(ids, 0.1)
    assert list(val) == list(range(90, 100)) and len(train) == 90


def test_windows_continue_their_stream_and_targets_are_next_tokens():
    ids = np.arange(1000)
    batches = StreamBatches(ids, batch_size=4, seq_len=10, seed=0)
    x0, y0 = batches.batch(0, 0)
    x1, _ = batches.batch(0, 1)
    assert x0.shape == (4, 10)
    assert (y0 == x0 + 1).all()  # every position has a target
    assert (x1[:, 0] == x0[:, -1] + 1).all()  # window 1 starts where window 0 stopped
    assert len(set(x0[:, 0].tolist())) == 4  # four different streams


def test_every_window_stays_inside_the_data():
    ids = np.arange(537)
    batches = StreamBatches(ids, batch_size=5, seq_len=7, seed=3)
    for epoch in range(4):
        for w in range(batches.windows_per_epoch):
            x, y = batches.batch(epoch, w)
            assert int(y.max()) < len(ids)


def test_too_small_corpus_says_what_size_is_needed():
    with pytest.raises(ScriptRNNError, match="needs at least"):
        StreamBatches(np.arange(50), batch_size=8, seq_len=16)
