"""What holds however a request arrives: body limits, the API key, slow clients, hosts, headers, error shapes.

The transfer-encoding and slow-client tests speak HTTP over real sockets to a real uvicorn
(configured as ``scriptrnn serve`` configures it); the rest use FastAPI's TestClient.
"""

import json
import math
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

import scriptrnn
from scriptrnn.errors import ScriptRNNError
from scriptrnn.files import read_json
from scriptrnn.server import ServerLimits, api_key_from, create_app
from scriptrnn.server.guards import LOOPBACK_HOSTS

from .conftest import live_server, make_run

KEY = "sesame"
SHAPE = {"error", "error_type", "detail", "message"}  # protocol.error_body


@pytest.fixture(scope="module")
def models():
    return {"m": scriptrnn.load()}


@pytest.fixture(scope="module")
def open_url(models):
    with live_server(create_app(models, ServerLimits(read_timeout_s=1.0))) as url:
        yield url


@pytest.fixture(scope="module")
def keyed_url(models):
    with live_server(create_app(models, ServerLimits(read_timeout_s=1.0), api_key=KEY)) as url:
        yield url


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def read_answer(sock: socket.socket, seconds: float = 10) -> tuple[int, dict]:
    """Status and JSON body of the answer on ``sock``; (0, {}) when it closed without one."""
    sock.settimeout(seconds)
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    if not data:
        return 0, {}
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body) if body else {}


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def post_head(path: str, *headers: str) -> bytes:
    return ("\r\n".join([f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
                         *headers]) + "\r\n\r\n").encode()


# ---------------------------------------------------------------- the body limit, however the body comes


def send_chunked_until_answered(sock: socket.socket, total: int, chunk: int = 16_384) -> tuple[int, dict, int]:
    """Send a chunked body of ``total`` bytes, stopping when the server answers; (status, body, bytes sent)."""
    piece = b'{"inputs": "' + b"A" * (chunk - 12)
    sent = 0
    while sent < total:
        if select.select([sock], [], [], 0)[0]:
            break  # the server answered before the body ended
        try:
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(piece)
        piece = b"A" * chunk
    else:
        sock.sendall(b'2\r\n"}\r\n0\r\n\r\n')
    status, body = read_answer(sock)
    return status, body, sent


def test_a_chunked_body_over_the_limit_gets_413_before_it_is_all_read(open_url):
    with connect(open_url) as sock:
        sock.sendall(post_head("/generate", "Transfer-Encoding: chunked"))
        status, body, sent = send_chunked_until_answered(sock, 20_000_000)
    assert status == 413 and "at most 64000 bytes" in body["message"] and SHAPE <= set(body)
    assert sent < 20_000_000  # cut off, not read to the end


def test_a_declared_length_over_the_limit_gets_413_at_once(open_url):
    with connect(open_url) as sock:
        sock.sendall(post_head("/v1/completions", "Content-Length: 40000000"))
        assert read_answer(sock, 5)[0] == 413


def test_the_key_is_checked_before_a_byte_of_the_body_is_read(keyed_url):
    # Headers only: a server that read the body first would wait for it (and then time out with 408).
    with connect(keyed_url) as sock:
        sock.sendall(post_head("/generate", "Transfer-Encoding: chunked"))
        started = time.monotonic()
        status, body = read_answer(sock, 5)
    assert status == 401 and "API key" in body["message"] and time.monotonic() - started < 0.9


def test_a_chunked_body_within_the_limit_is_served(open_url):
    with connect(open_url) as sock:
        sock.sendall(post_head("/generate", "Transfer-Encoding: chunked"))
        body = json.dumps({"inputs": "HAMLET:", "parameters": {"max_new_tokens": 5, "seed": 1}}).encode()
        for i in range(0, len(body), 7):
            sock.sendall(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]))
        sock.sendall(b"0\r\n\r\n")
        status, answer = read_answer(sock)
    assert status == 200 and len(answer["generated_text"]) == 5


@pytest.mark.parametrize("request_bytes, status", [
    (post_head("/generate", "Content-Length: -5"), 400),
    (post_head("/generate", "Content-Length: 5", "Content-Length: 6"), 400),
    (post_head("/generate", "Transfer-Encoding: chunked") + b"zz\r\n", 400),
    (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000, 431),  # a head without end
], ids=["negative-length", "two-lengths", "bad-chunk-size", "huge-head"])
def test_what_the_http_parser_refuses_has_the_project_shape_and_headers(open_url, request_bytes, status):
    with connect(open_url) as sock:
        sock.sendall(request_bytes)
        head, body = read_raw(sock)
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), head
    assert b"content-type: application/json" in head.lower() and b"x-frame-options: deny" in head.lower()
    assert b"content-security-policy: default-src 'none'" in head.lower()
    assert SHAPE <= set(json.loads(body)) and "malformed HTTP request" in json.loads(body)["message"]


def read_raw(sock: socket.socket) -> tuple[bytes, bytes]:
    """An answer's head and body, read until the server closes the connection."""
    sock.settimeout(10)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


# ---------------------------------------------------------------- clients that leave


def test_cut_requests_leave_the_queue_whether_they_stream_or_not(models):
    """Issue 28: cut non-streaming requests ran to the end and filled the queue, and every request after got 503."""
    whole = {"inputs": "HAMLET:", "parameters": {"max_new_tokens": 2000, "num_return_sequences": 16}}
    routes = [("/generate", whole), ("/", whole), ("/v1/completions", {"prompt": "HAMLET:", "max_tokens": 2000,
                                                                       "n": 16}), ("/generate_stream", whole)]
    with live_server(create_app(models)) as url:
        cut = []
        for i in range(20):  # 16 running (256 sequences, the batch), 4 waiting
            path, body = routes[i % len(routes)]
            data = json.dumps(body).encode()
            cut.append(connect(url))
            cut[-1].sendall(post_head(path, f"Content-Length: {len(data)}") + data)
        load = wait_for_load(url, lambda load: load["running"] + load["waiting"] == 20)
        assert (load["running"], load["waiting"], load["sequences"]) == (16, 4, 256), load
        for sock in cut:
            sock.close()
        closed = time.monotonic()
        load = wait_for_load(url, lambda load: load["running"] + load["waiting"] == 0)
        assert time.monotonic() - closed < 1.0 and load["sequences"] == 0, load
        steps = load["steps"]
        answer = httpx.post(f"{url}/generate", json={"inputs": "HAMLET:", "parameters": {"max_new_tokens": 10}},
                            timeout=30)
        assert answer.status_code == 200 and len(answer.json()["generated_text"]) == 10
        assert wait_for_load(url, lambda load: True)["steps"] - steps <= 12  # the cut ones run no more


def wait_for_load(url: str, ready, seconds: float = 30) -> dict:
    """The batcher's load from /info, once ``ready(load)`` (or after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while not ready(load := httpx.get(f"{url}/info", timeout=5).json()["load"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    return load


# ---------------------------------------------------------------- slow clients


def test_half_sent_headers_are_cut_off_and_others_are_served_meanwhile(open_url):
    slow = [connect(open_url) for _ in range(20)]
    for sock in slow:
        sock.sendall(b"POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: app")  # and nothing more
    started = time.monotonic()
    assert httpx.get(f"{open_url}/health", timeout=5).status_code == 200  # while they hang
    assert time.monotonic() - started < 0.5
    for sock in slow:
        status, _ = read_answer(sock, 10)  # the server closes them: 408, then EOF
        assert status in (0, 408)
        assert sock.recv(1) == b""
        sock.close()
    assert time.monotonic() - started < 8


def test_a_connection_that_sends_nothing_is_closed(open_url):
    with connect(open_url) as sock:
        sock.settimeout(10)
        started = time.monotonic()
        assert read_answer(sock, 10)[0] in (0, 408)
        assert time.monotonic() - started < 8


def test_a_half_sent_body_gets_408(open_url):
    with connect(open_url) as sock:
        sock.sendall(post_head("/generate", "Content-Length: 100") + b'{"inputs": ')
        started = time.monotonic()
        status, body = read_answer(sock, 10)
    assert status == 408 and "not received within 1 s" in body["message"]
    assert time.monotonic() - started < 8


def test_a_trickled_header_gains_nothing(open_url):
    with connect(open_url) as sock:
        started = time.monotonic()
        try:
            for byte in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert read_answer(sock, 5)[0] in (0, 408)
    assert time.monotonic() - started < 4  # the deadline held from the first byte, not the last


# ---------------------------------------------------------------- hosts, headers and the error shape


def test_only_loopback_hosts_by_default(models):
    with TestClient(create_app(models, allowed_hosts=LOOPBACK_HOSTS), base_url="http://127.0.0.1:8000") as c:
        assert c.get("/health").status_code == 200
        assert c.get("/health", headers={"Host": "localhost:8000"}).status_code == 200
        assert c.get("/health", headers={"Host": "[::1]:8000"}).status_code == 200
        refused = c.get("/v1/models", headers={"Host": "evil.example"})
        assert refused.status_code == 400 and "--allowed-hosts" in refused.json()["message"]
    with TestClient(create_app(models, allowed_hosts=["*.example.org"])) as c:
        assert c.get("/health", headers={"Host": "api.example.org"}).status_code == 200
        assert c.get("/health", headers={"Host": "example.org.evil"}).status_code == 400


def test_security_headers_on_every_answer(models):
    with TestClient(create_app(models)) as c:
        for response in (c.get("/"), c.get("/static/app.js"), c.post("/generate", json={"inputs": "A", "parameters":
                         {"max_new_tokens": 1}}), c.get("/nowhere"), c.get("/docs")):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        page_csp = c.get("/").headers["content-security-policy"]
        assert "script-src 'self';" in page_csp and "unsafe-inline" not in page_csp


@pytest.mark.parametrize("method, path, body, status", [
    ("GET", "/nowhere", None, 404),
    ("DELETE", "/generate", None, 405),
    ("GET", "/static/nothing.js", None, 404),
    ("GET", "/static/" + "a" * 256, None, 404),  # too long a file name: an OSError (500) when it reached a stat
    ("GET", "/static/" + "a" * 5000, None, 404),
    ("POST", "/generate", "[" * 100_000 + "]" * 100_000, 413),  # over 64 KB: cut off first
    ("POST", "/generate", "[" * 30_000 + "]" * 30_000, 400),  # RecursionError in Python's parser
    ("POST", "/v1/completions", "[" * 30_000 + "]" * 30_000, 400),
    ("POST", "/generate", '{"inputs": "A", "parameters": {"seed": ' + "9" * 5000 + "}}", 400),
    ("POST", "/v1/completions", '{"prompt": "A", "seed": ' + "9" * 5000 + "}", 400),
    ("POST", "/v1/completions", "{not json", 400),
    ("POST", "/v1/completions", '{"prompt": "A", "max_tokens": "10"}', 422),
    ("POST", "/v1/completions", '{"prompt": "A", "max_tokens": true}', 422),
], ids=lambda v: str(v)[:24])
def test_every_error_has_the_project_shape(models, method, path, body, status):
    with TestClient(create_app(models)) as c:
        response = c.request(method, path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert SHAPE <= set(response.json()) and response.json()["message"]
    assert "Traceback" not in response.text and "There was an error parsing" not in response.text


@pytest.mark.parametrize("limit, value", [("read_timeout_s", math.nan), ("request_timeout_s", math.nan),
                                          ("request_timeout_s", math.inf), ("read_timeout_s", 0),
                                          ("max_queue", -1), ("max_batch", 2.5), ("max_body_bytes", True)])
def test_every_limit_is_finite_and_above_zero(limit, value):
    with pytest.raises(ScriptRNNError, match="must be a") as caught:
        ServerLimits(**{limit: value})
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- the API key


def test_an_empty_key_is_refused_wherever_it_comes_from(tmp_path):
    with pytest.raises(ScriptRNNError, match="empty"):
        api_key_from("", environ={})
    with pytest.raises(ScriptRNNError, match="SCRIPTRNN_API_KEY is empty"):
        api_key_from(environ={"SCRIPTRNN_API_KEY": ""})
    (tmp_path / "key").write_text("\n")
    with pytest.raises(ScriptRNNError, match="empty"):
        api_key_from(file=tmp_path / "key", environ={})
    with pytest.raises(ScriptRNNError, match="one way"):
        api_key_from("a", tmp_path / "key", environ={})
    with pytest.raises(ScriptRNNError, match="empty"):
        create_app({"m": None}, api_key="")
    (tmp_path / "key").write_text("s3cret\n")
    assert api_key_from(file=tmp_path / "key", environ={"SCRIPTRNN_API_KEY": "other"}) == "s3cret"
    assert api_key_from(environ={"SCRIPTRNN_API_KEY": "other"}) == "other"
    assert api_key_from(environ={}) is None


def test_serve_with_an_empty_api_key_refuses_to_start():
    done = subprocess.run([sys.executable, "-m", "scriptrnn", "serve", "--api-key", ""], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": _src()})
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "empty" in done.stderr


def test_serve_takes_the_key_from_the_environment_and_says_it_is_keyed():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": _src(), "SCRIPTRNN_API_KEY": KEY}
    server = subprocess.Popen([sys.executable, "-m", "scriptrnn", "serve", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = [server.stdout.readline() for _ in range(3)]
        assert any(line.startswith("scriptrnn: keyed") for line in lines), lines
        assert not any(KEY in line for line in lines)
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert httpx.get(f"{url}/v1/models").status_code == 401
        assert httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert httpx.get(f"{url}/health", headers={"Host": "evil.example"}).status_code == 400
    finally:
        server.terminate()
        server.wait(timeout=30)


def _src() -> str:
    return str(Path(scriptrnn.__file__).resolve().parents[1])


# ---------------------------------------------------------------- models that cannot be served


def test_a_nan_loss_in_the_config_is_refused_at_start_up(tmp_path):
    run = make_run(tmp_path / "run", "gru", "char")
    config = read_json(run / "config.json", "")
    config["metrics"] = {"val": {"loss": math.nan}}
    (run / "config.json").write_text(json.dumps(config))  # json writes NaN, as a diverged run could
    with pytest.raises(ScriptRNNError, match="'metrics.val.loss' must be a finite number") as caught:
        create_app({"run": scriptrnn.load(run)})  # the one reader of config.json refuses it, before any server
    assert "\n" not in str(caught.value)
