"""The serverless handler: API-Gateway events in, the server's /generate answers out, no PyTorch needed."""

import base64
import json
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from scriptrnn.model.export import export_onnx
from scriptrnn.server.protocol import ServerLimits
from scriptrnn.runtime import OnnxModel
from scriptrnn.errors import ScriptRNNError
from scriptrnn.server.serverless import handler, limits_from_environment, make_handler
from scriptrnn.server import create_app, load_models

from .conftest import make_run

LIMITS = ServerLimits(max_new_tokens=50, max_prime_chars=100, max_body_bytes=2000, max_return_sequences=3)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serverless")
    export_onnx(make_run(folder / "run", "gru", "char"), folder / "tiny")
    return folder / "tiny"


@pytest.fixture(scope="module")
def server(exported):
    models = load_models([exported], threads=1)
    assert isinstance(models["tiny"].model, OnnxModel)  # an exported directory is served with onnxruntime
    with TestClient(create_app(models, LIMITS)) as client:
        yield client


@pytest.fixture(scope="module")
def handle(exported):
    return make_handler(exported, LIMITS)


def rest_event(body: str, method: str = "POST") -> dict:
    """API Gateway REST API (payload 1.0)."""
    return {"resource": "/generate", "path": "/generate", "httpMethod": method, "isBase64Encoded": False,
            "headers": {"content-type": "application/json"}, "queryStringParameters": None, "body": body}


def http_event(body: bytes, method: str = "POST") -> dict:
    """HTTP API or function URL (payload 2.0), body base64-encoded as binary bodies arrive."""
    return {"version": "2.0", "routeKey": "POST /generate", "rawPath": "/generate",
            "requestContext": {"http": {"method": method, "path": "/generate"}},
            "isBase64Encoded": True, "body": base64.b64encode(body).decode()}


OK = [
    {"inputs": "jerry", "parameters": {"max_new_tokens": 20, "seed": 1}},
    {"inputs": "george: i", "parameters": {"max_new_tokens": 30, "seed": 2, "details": True,
                                           "num_return_sequences": 3, "top_k": 5, "top_p": 0.9}},
    {"inputs": "", "parameters": {"max_new_tokens": 0}},
    {"inputs": "elaine", "parameters": {"temperature": 0, "max_new_tokens": 10.0, "stop": ["\n"], "foo": 1}},
    {"inputs": "kramer", "parameters": {"do_sample": False, "repetition_penalty": 1.3, "seed": 5,
                                        "stop_after_lines": 1, "top_k": None}, "model": "tiny"},
    {"inputs": "jerry", "parameters": {"seed": 3, "max_new_tokens": 50}, "model": "tgi", "stream": False},
]
REFUSED = [
    {}, {"inputs": 3}, [1], "jerry", {"inputs": "a", "parameters": "x"}, {"inputs": "a", "parameters": None},
    {"inputs": "a", "stream": None}, {"inputs": "a", "model": 7},
    *({"inputs": "jerry", "parameters": {name: value}} for name, value in [
        ("max_new_tokens", -1), ("max_new_tokens", 3.5), ("max_new_tokens", 51), ("max_new_tokens", "many"),
        ("top_k", 0), ("top_p", 0), ("top_p", 1.5), ("temperature", -1), ("temperature", "hot"),
        ("repetition_penalty", 0), ("seed", -1), ("seed", 2**64), ("stop", "x"), ("stop", [1]), ("stop", [""]),
        ("num_return_sequences", 0), ("num_return_sequences", 4), ("stop_after_lines", 0),
        ("do_sample", "maybe"), ("details", 2),
        # JSON's own types only, in both: pydantic's server once read these as 1 and 10 (issue 17)
        ("max_new_tokens", True), ("max_new_tokens", "10"), ("temperature", "0.5"), ("top_k", True),
        ("seed", "1"), ("stop", [["x"]]), ("num_return_sequences", False)]),
    {"inputs": "jerry", "parameters": {"stop": [f"s{i}" for i in range(6500)]}},  # more stops than allowed
    {"inputs": "jerry €"}, {"inputs": "j" * 101}, {"inputs": "jerry", "model": "nope"},
    {"inputs": "x" * 3000},
]


@pytest.mark.parametrize("body", OK + REFUSED, ids=lambda body: json.dumps(body)[:60])
def test_the_handler_answers_every_body_as_the_server_does(server, handle, body):
    expected = server.post("/generate", json=body)
    got = handle(rest_event(json.dumps(body)))
    assert got["statusCode"] == expected.status_code, (got["body"], expected.text)
    assert got["headers"]["Content-Type"] == "application/json"
    answer = json.loads(got["body"])
    if expected.status_code == 200:
        assert answer == expected.json()
    else:  # the same field named first; the server's wording may add pydantic's detail
        assert answer["message"].split(":")[0] == expected.json()["message"].split(":")[0], answer["message"]
        assert answer["error_type"] == expected.json()["error_type"]


# Raw bodies: what each must get from both (400: not JSON the project reads; 422: JSON of the wrong shape).
RAW = [
    ("{not json", 400), ("", 400), ("   ", 400), ("[1]", 422), ("null", 422), ("7", 422), ('"jerry"', 422),
    # (within LIMITS' 2,000 bytes; test_server_guards.py sends the 100,000-deep and 5,000-digit ones)
    ("[" * 990 + "]" * 990, 400),
    ('{"inputs": "a", "x": ' + "[" * 70 + "]" * 70 + "}", 400),  # deeper than the limit, not the recursion one
    ('{"inputs": "a", "parameters": {"seed": 1' + "0" * 150 + "}}", 400),
    ('{"inputs": "a"}\xff'.encode("latin-1").decode("latin-1"), 400),
]


@pytest.mark.parametrize("raw, status", RAW, ids=lambda v: repr(v)[:30] if isinstance(v, str) else str(v))
def test_raw_bodies_get_the_same_answer_from_both(server, handle, raw, status):
    expected = server.post("/generate", content=raw.encode("utf-8", "surrogatepass"),
                           headers={"content-type": "application/json"})
    got = handle(rest_event(raw))
    assert (got["statusCode"], expected.status_code) == (status, status), (got["body"], expected.text)
    assert json.loads(got["body"])["error_type"] == expected.json()["error_type"]
    assert "Traceback" not in got["body"] + expected.text


# Events of shapes no platform sends: each a 4xx JSON answer, never a 500.
MALFORMED_EVENTS = [
    None, [], ["inputs"], "jerry", 7, True,
    {"body": {"inputs": "jerry"}}, {"body": [1]}, {"body": 7},  # a body already decoded, or not text at all
    {"requestContext": "x", "body": '{"inputs": "a"}'},
    {"requestContext": {"http": None}, "body": '{"inputs": "a"}'},
    {"requestContext": {"http": "GET"}, "body": '{"inputs": "a"}'},
    {"httpMethod": 7, "body": '{"inputs": "a"}'},
    {"httpMethod": "POST", "isBase64Encoded": True, "body": "%%%"},
    {"httpMethod": "POST", "body": "[" * 100_000 + "]" * 100_000},
    {"inputs": "a", "parameters": {"x": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}},
]


@pytest.mark.parametrize("event", MALFORMED_EVENTS, ids=lambda e: repr(e)[:40])
def test_malformed_events_get_a_4xx_json_answer(handle, event, capsys):
    got = handle(event)
    assert 400 <= got["statusCode"] < 500, got
    assert got["headers"]["Content-Type"] == "application/json"
    assert json.loads(got["body"])["message"]
    assert "Traceback" not in capsys.readouterr().err  # no bug logged: each was an answer, not a crash


def test_payload_2_base64_and_direct_invocation(server, handle):
    body = {"inputs": "jerry", "parameters": {"max_new_tokens": 25, "seed": 9}}
    expected = server.post("/generate", json=body).json()
    assert json.loads(handle(http_event(json.dumps(body).encode()))["body"])["generated_text"] == expected["generated_text"]
    assert json.loads(handle(body)["body"]) == expected  # `aws lambda invoke` with the body as the event


def test_methods_and_malformed_bodies(handle):
    assert json.loads(handle(rest_event("", "GET"))["body"]) == {"status": "ok", "model": "tiny"}
    refused = handle(rest_event("{}", "PUT"))
    assert refused["statusCode"] == 405 and refused["headers"]["Allow"] == "GET, POST"
    assert handle(rest_event("{not json"))["statusCode"] == 400  # not JSON at all: 400, as the server says
    assert handle({**http_event(b"{}"), "body": "%%%"})["statusCode"] == 400
    streamed = handle(rest_event(json.dumps({"inputs": "jerry", "stream": True})))
    assert streamed["statusCode"] == 422 and "stream" in streamed["body"]


def test_the_entry_point_reads_its_settings_from_the_environment(exported, monkeypatch):
    monkeypatch.setenv("SCRIPTRNN_MODEL_DIR", str(exported))
    monkeypatch.setenv("SCRIPTRNN_MAX_NEW_TOKENS", "10")
    too_many = handler(rest_event(json.dumps({"inputs": "a", "parameters": {"max_new_tokens": 11}})), None)
    assert too_many["statusCode"] == 422 and "at most 10" in too_many["body"]
    assert handler(rest_event(json.dumps({"inputs": "a", "parameters": {"max_new_tokens": 10}})))["statusCode"] == 200


@pytest.mark.parametrize("value", ["nan", "inf", "0"])
def test_a_limit_from_the_environment_is_finite_and_above_zero(monkeypatch, value):
    # The server's check (ServerLimits), so `--timeout nan` and SCRIPTRNN_REQUEST_TIMEOUT_S=nan fail alike.
    monkeypatch.setenv("SCRIPTRNN_REQUEST_TIMEOUT_S", value)
    with pytest.raises(ScriptRNNError, match="must be a finite number of seconds above 0") as caught:
        limits_from_environment()
    assert "\n" not in str(caught.value)


def test_the_handler_imports_neither_pytorch_nor_a_web_framework(exported):
    code = ("import json, sys\n"
            "from scriptrnn.server.serverless import make_handler\n"
            f"answer = make_handler({str(exported)!r})({{'inputs': 'jerry', 'parameters': {{'seed': 1}}}})\n"
            "assert answer['statusCode'] == 200, answer\n"
            "print(sorted({'torch', 'pydantic', 'fastapi', 'starlette'} & set(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
