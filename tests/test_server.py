"""The HTTP server: in-process API tests, and the real Hugging Face and OpenAI clients over loopback."""

import asyncio
import time

import httpx
import pytest
from fastapi.testclient import TestClient

import scriptrnn
from scriptrnn.server import ServerLimits, create_app

from .conftest import live_server

MODEL = "shakespeare-char"


@pytest.fixture(scope="module")
def models():
    return {MODEL: scriptrnn.load()}


@pytest.fixture
def client(models):
    with TestClient(create_app(models)) as c:
        yield c


def test_health_info_and_models(client):
    assert client.get("/health").json() == {"status": "ok"}
    card = client.get("/v1/models").json()["data"][0]
    assert card["id"] == MODEL and card["object"] == "model"
    assert card["level"] == "char" and card["cell"] == "lstm" and card["vocab_size"] == 80
    assert card["held_out_loss"] > 0 and "HAMLET" in card["speakers"]
    info = client.get("/info").json()
    assert info["model_id"] == MODEL
    assert info["sampling_defaults"]["temperature"] == scriptrnn.SamplingConfig.temperature  # the one default
    assert client.get("/openapi.json").status_code == 200


def test_tgi_generate_with_details_and_seed(client):
    body = {"inputs": "HAMLET:", "parameters": {"max_new_tokens": 30, "seed": 4, "details": True}}
    first = client.post("/generate", json=body).json()
    again = client.post("/generate", json=body).json()
    assert first["generated_text"] == again["generated_text"] and len(first["generated_text"]) == 30
    assert first["details"]["finish_reason"] == "length" and first["details"]["generated_tokens"] == 30
    # the same parameters mean the same thing as in Python
    assert first["generated_text"] == scriptrnn.load().generate("HAMLET:", max_new_tokens=30, seed=4)[0][7:]


def test_tgi_stream_events(client):
    body = {"inputs": "ROMEO:", "parameters": {"max_new_tokens": 8, "seed": 1}}
    with client.stream("POST", "/generate_stream", json=body) as response:
        events = [line for line in response.iter_lines() if line.startswith("data:")]
    assert len(events) == 8
    assert '"generated_text": null' in events[0] and '"finish_reason": "length"' in events[-1]


def test_openai_completions_with_stop_and_n(client):
    body = {"model": MODEL, "prompt": "romeo", "max_tokens": 300, "n": 3, "seed": 2, "stop": ["\n"]}
    out = client.post("/v1/completions", json=body).json()
    assert len(out["choices"]) == 3
    for choice in out["choices"]:
        assert "\n" not in choice["text"]
        assert choice["finish_reason"] in ("stop", "length")
    assert out["usage"]["prompt_tokens"] > 0


@pytest.mark.parametrize("body, field", [
    ({"prompt": "x", "max_tokens": -1}, "max_tokens"),
    ({"prompt": "x", "max_tokens": 10**6}, "max_new_tokens"),
    ({"prompt": "x", "temperature": -1}, "temperature"),
    ({"prompt": "x", "top_p": 1.5}, "top_p"),
    ({"prompt": "x", "n": 99}, "num_return_sequences"),
    ({"prompt": "x" * 9000}, "prompt"),
    ({"prompt": "\u2603"}, "vocabulary"),
])
def test_bad_values_get_422_naming_the_field(client, body, field):
    response = client.post("/v1/completions", json=body)
    assert response.status_code == 422
    assert field in response.json()["message"]
    assert "Traceback" not in response.text


def test_unknown_model_is_404(client):
    assert client.post("/v1/completions", json={"model": "nope", "prompt": "x"}).status_code == 404


def test_body_size_cap(models):
    with TestClient(create_app(models, ServerLimits(max_body_bytes=100))) as c:
        response = c.post("/generate", json={"inputs": "x" * 500})
    assert response.status_code == 413


def test_api_key_on_every_route_but_health(models):
    with TestClient(create_app(models, api_key="sesame")) as c:
        assert c.get("/health").status_code == 200
        assert c.get("/v1/models").status_code == 401
        assert c.post("/generate", json={"inputs": "A"}).status_code == 401
        ok = c.get("/v1/models", headers={"Authorization": "Bearer sesame"})
        assert ok.status_code == 200


def test_full_queue_answers_503_with_retry_after(models):
    # One request running and one waiting fill the server; the third is refused at once.
    body = {"inputs": "A", "parameters": {"max_new_tokens": 2000}}

    async def first_answer(url: str):
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            posts = [asyncio.create_task(c.post("/generate", json=body)) for _ in range(3)]
            done, pending = await asyncio.wait(posts, return_when=asyncio.FIRST_COMPLETED)
            for post in pending:
                post.cancel()  # the client leaves: the server cancels what it started
            return done.pop().result()

    with live_server(create_app(models, ServerLimits(max_queue=1, max_batch=1))) as url:
        response = asyncio.run(first_answer(url))
    assert response.status_code == 503 and response.headers["retry-after"] == "1"


def test_timeout_ends_a_request(models):
    with TestClient(create_app(models, ServerLimits(request_timeout_s=0.05))) as c:
        response = c.post("/generate", json={"inputs": "A", "parameters": {"max_new_tokens": 2000}})
    assert response.status_code == 504 and "timed out" in response.json()["message"]


def test_concurrent_requests_share_forward_passes(models):
    """Eight requests of 40 tokens each take far fewer than 8 x 40 batcher steps."""
    app = create_app(models)
    service = app.state.service

    async def many():
        from httpx import ASGITransport, AsyncClient

        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as c:
            body = {"inputs": "A", "parameters": {"max_new_tokens": 40}}
            return await asyncio.gather(*[c.post("/generate", json=body) for _ in range(8)])

    responses = asyncio.run(many())
    assert all(r.status_code == 200 and len(r.json()["generated_text"]) == 40 for r in responses)
    assert service.batcher.steps < 8 * 40 / 2
    service.batcher.close()


def test_client_disconnect_frees_the_stream(models):
    app = create_app(models)
    service = app.state.service
    with TestClient(app) as c:
        body = {"inputs": "A", "parameters": {"max_new_tokens": 2000}}
        with c.stream("POST", "/generate_stream", json=body) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    break  # leave after the first token
        deadline = time.time() + 5
        while service.batcher.load["running"] and time.time() < deadline:
            time.sleep(0.01)
        assert service.batcher.load["running"] == 0


# ---------------------------------------------------------------- real clients over loopback


@pytest.fixture(scope="module")
def base_url(models):
    with live_server(create_app(models)) as url:
        yield url


def test_huggingface_inference_client(base_url):
    from huggingface_hub import InferenceClient

    client = InferenceClient(base_url=base_url)
    text = client.text_generation("HAMLET:", max_new_tokens=20, seed=1)
    assert isinstance(text, str) and len(text) == 20
    pieces = list(client.text_generation("HAMLET:", max_new_tokens=12, seed=1, stream=True))
    assert "".join(pieces) == client.text_generation("HAMLET:", max_new_tokens=12, seed=1)
    detailed = client.text_generation("HAMLET:", max_new_tokens=5, details=True)
    assert detailed.details.generated_tokens == 5


def test_openai_client(base_url):
    from openai import OpenAI

    client = OpenAI(base_url=f"{base_url}/v1", api_key="unused")
    assert [m.id for m in client.models.list()] == [MODEL]
    done = client.completions.create(model=MODEL, prompt="ROMEO:", max_tokens=25, seed=3)
    assert len(done.choices[0].text) == 25
    streamed = client.completions.create(model=MODEL, prompt="ROMEO:", max_tokens=25, seed=3, stream=True)
    assert "".join(chunk.choices[0].text for chunk in streamed) == done.choices[0].text


def test_n_above_the_batch_size_is_refused_not_stuck(models):
    with TestClient(create_app(models, ServerLimits(max_batch=2))) as c:
        response = c.post("/v1/completions", json={"prompt": "A", "n": 3, "max_tokens": 5})
        assert response.status_code == 422 and "at most 2" in response.json()["message"]
        assert c.post("/v1/completions", json={"prompt": "A", "n": 2, "max_tokens": 5}).status_code == 200


def test_several_prompts_are_refused(client):
    response = client.post("/v1/completions", json={"prompt": ["A", "B"], "max_tokens": 5})
    assert response.status_code == 422 and "prompt" in response.json()["message"]


def test_a_bare_speaker_continues_with_its_colon(client):
    whole = client.post("/generate", json={"inputs": "hamlet", "parameters": {"max_new_tokens": 10, "seed": 1,
                                                                             "details": True}}).json()
    assert whole["generated_text"].startswith(":")
    assert "".join(t["text"] for t in whole["details"]["tokens"]) == whole["generated_text"][1:]
    done = client.post("/v1/completions", json={"prompt": "hamlet", "max_tokens": 10, "seed": 1}).json()
    assert done["choices"][0]["text"] == whole["generated_text"]


def test_a_failing_step_fails_its_requests_and_the_server_goes_on(models, monkeypatch):
    from scriptrnn.generate import generation  # the batcher drives generation's one token loop

    real = generation.step_together
    calls = {"n": 0}

    def fail_once(model, generations):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated out of memory")
        return real(model, generations)

    monkeypatch.setattr(generation, "step_together", fail_once)
    with TestClient(create_app(models)) as c:
        failed = c.post("/generate", json={"inputs": "A", "parameters": {"max_new_tokens": 5}})
        assert failed.status_code == 500 and "internal error" in failed.json()["message"]
        assert "Traceback" not in failed.text
        ok = c.post("/generate", json={"inputs": "A", "parameters": {"max_new_tokens": 5}})
        assert ok.status_code == 200 and len(ok.json()["generated_text"]) == 5


def test_zero_new_tokens(client):
    assert client.post("/generate", json={"inputs": "A", "parameters": {"max_new_tokens": 0}}).json() == \
        {"generated_text": ""}


def test_many_streaming_clients_at_once_all_finish(base_url):
    """The load test of issue 17 in small: 24 streams at once over loopback, no errors, every token."""
    import httpx

    async def one(client, seed):
        body = {"inputs": "HAMLET:", "parameters": {"max_new_tokens": 15, "seed": seed}}
        async with client.stream("POST", "/generate_stream", json=body) as response:
            assert response.status_code == 200
            return len([line async for line in response.aiter_lines() if line.startswith("data:")])

    async def many():
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            return await asyncio.gather(*[one(client, s) for s in range(24)])

    assert asyncio.run(many()) == [15] * 24
