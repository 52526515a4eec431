"""Stop sequences: the matcher agrees with the plain definition, and requests keep the bounds."""

import random

import pytest
from fastapi.testclient import TestClient

import scriptrnn
from scriptrnn.errors import ScriptRNNError
from scriptrnn.server import ServerLimits, create_app
from scriptrnn.generate.stops import MAX_STOP_CHARS, MAX_STOPS, StopMatcher, check_stops


def first_end(stops, text):
    """Where the first stop ends, by the definition: the shortest prefix that ends with a stop."""
    return next((k for k in range(len(text)) if any(text[:k + 1].endswith(s) for s in stops)), None)


def test_the_matcher_finds_the_first_stop_as_the_definition_does():
    rng = random.Random(0)
    for _ in range(3000):
        stops = ["".join(rng.choice("ab\n") for _ in range(rng.randint(1, 5))) for _ in range(rng.randint(1, 6))]
        text = "".join(rng.choice("ab\n") for _ in range(40))
        cuts = sorted(rng.sample(range(1, len(text)), 15))  # tokens of several characters, as words are
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
        matcher, state, found, at = StopMatcher(stops), 0, None, 0
        for piece in pieces:
            state, hit = matcher.feed(state, piece)
            if hit:
                found = (at, at + len(piece))
                break
            at += len(piece)
        expected = first_end(stops, text)
        assert (found is None) == (expected is None), (stops, text)
        if found is not None:  # the first stop ended within the piece that hit
            assert found[0] <= expected < found[1], (stops, text)


def test_the_automaton_grows_with_the_stops_total_length_and_a_state_is_one_number():
    matcher = StopMatcher(["JERRY:", "JERRY: ", "GEORGE:", "\n\n"])
    assert len(matcher.goto) <= 1 + sum(len(s) for s in matcher.stops)
    state, hit = matcher.feed(0, "hello GEORG")
    assert isinstance(state, int) and not hit
    assert matcher.feed(state, "E: hi")[1]


def test_bounds():
    check_stops(["x"] * MAX_STOPS)
    check_stops(["x" * MAX_STOP_CHARS])
    with pytest.raises(ScriptRNNError, match=f"at most {MAX_STOPS} stop sequences"):
        check_stops(["x"] * (MAX_STOPS + 1))
    with pytest.raises(ScriptRNNError, match=f"at most {MAX_STOP_CHARS} characters"):
        check_stops(["x" * 200, "y" * 57])


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app({"m": scriptrnn.load()}, ServerLimits(max_stops=3, max_stop_chars=20))) as c:
        yield c


@pytest.mark.parametrize("route, body", [
    ("/generate", {"inputs": "A", "parameters": {"stop": [f"s{i}" for i in range(6500)], "max_new_tokens": 5}}),
    ("/generate", {"inputs": "A", "parameters": {"stop": ["x" * 21], "max_new_tokens": 5}}),
    ("/v1/completions", {"prompt": "A", "stop": [f"s{i}" for i in range(4)], "max_tokens": 5}),
], ids=["6500-stops", "long-stop", "openai"])
def test_the_server_refuses_stop_lists_beyond_its_flags(client, route, body):
    response = client.post(route, json=body)
    assert response.status_code == 422 and response.json()["message"].startswith("stop: at most")


def test_stops_within_the_bounds_still_stop(client):
    out = client.post("/generate", json={"inputs": "HAMLET:", "parameters": {
        "stop": ["\n", "e", "t"], "max_new_tokens": 200, "seed": 1, "details": True}}).json()
    assert out["details"]["finish_reason"] == "stop_sequence"
    assert out["generated_text"][-1] in "\net" and not any(c in out["generated_text"][:-1] for c in "\net")
