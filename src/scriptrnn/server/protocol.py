"""TGI's ``/generate`` without a web framework: the limits, the checks and the answer's shape.

The server (FastAPI) and the serverless handler (no web framework, no pydantic:
``scriptrnn.server.serverless``) share these, so a request is refused or answered the
same way by both: ``read_json_body`` reads the JSON (bounded), ``parse_tgi_body`` checks
its fields (JSON's own types only: ``"10"`` or ``true`` is not a number), and
``check_request`` the server's limits. ``event_request`` reads a serverless event of
any shape.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field, fields

from ..errors import ScriptRNNError
from ..generate.sampling import SamplingConfig
from ..generate.stops import MAX_STOP_CHARS, MAX_STOPS, check_stops
from .. import safe_json


@dataclass
class ServerLimits:
    """What one request may ask for; the CLI's serve flags set these."""

    max_new_tokens: int = 2000  # per sequence
    max_prime_chars: int = 8000
    max_body_bytes: int = 64_000
    max_return_sequences: int = 16
    max_queue: int = 64  # requests waiting to start; more get 503 + Retry-After
    max_batch: int = 256  # sequences stepped together
    request_timeout_s: float = 300.0
    default_new_tokens: int = 200
    max_stops: int = MAX_STOPS  # stop sequences per request (stops.py says why these two)
    max_stop_chars: int = MAX_STOP_CHARS  # their characters in all
    read_timeout_s: float = 10.0  # for a client to send its request's headers, and again its body

    def __post_init__(self):
        # One check for every way limits are made (serve, create_app, a test): NaN compares false with
        # everything, so a NaN timeout would pass a plain 'value <= 0' and then time out every request.
        for f in fields(self):
            name, value, whole = f.name, getattr(self, f.name), f.type in ("int", int)
            if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                flag = LIMIT_FLAGS.get(name, f"--{name.replace('_', '-')}")
                kind = "a whole number" if whole else "a finite number of seconds"
                raise ScriptRNNError(f"{flag or name}: must be {kind} above 0, got {value!r}")


# serve's flags whose names differ from their field's ('': none, the field's own name is given).
LIMIT_FLAGS = {"request_timeout_s": "--timeout", "read_timeout_s": "--read-timeout", "default_new_tokens": ""}


class RequestError(Exception):
    """A bad request, answered with ``status`` and a message naming the field."""

    def __init__(self, message: str, status: int = 422, headers: dict | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers


def error_body(message: str, status: int) -> dict:
    """TGI's error shape ({"error", "error_type"}) with OpenAI's nested message beside it."""
    return {"error": message, "error_type": "validation" if status == 422 else "server",
            "detail": message, "message": message}


# ---------------------------------------------------------------- a request


def tgi_sampling(p, limits: ServerLimits) -> SamplingConfig:
    """TGI parameters (the server's pydantic model or ``TGIParameters`` below) as sampling settings."""
    return SamplingConfig(
        max_new_tokens=limits.default_new_tokens if p.max_new_tokens is None else p.max_new_tokens,
        do_sample=SamplingConfig.do_sample if p.do_sample is None else p.do_sample,
        temperature=SamplingConfig.temperature if p.temperature is None else p.temperature,  # the one default
        top_k=p.top_k,
        top_p=p.top_p,
        repetition_penalty=p.repetition_penalty,
        num_return_sequences=p.num_return_sequences or 1,
        seed=p.seed,
        stop=p.stop or None,
        stop_after_lines=p.stop_after_lines,
    )


def check_request(prime: str, config: SamplingConfig, limits: ServerLimits) -> SamplingConfig:
    """The limits a served request must keep, then the settings' own checks; 422 naming the field."""
    if config.max_new_tokens > limits.max_new_tokens:
        raise RequestError(f"max_new_tokens (max_tokens): at most {limits.max_new_tokens}, "
                           f"got {config.max_new_tokens}")
    most = min(limits.max_return_sequences, limits.max_batch)
    if config.num_return_sequences > most:
        raise RequestError(f"n / num_return_sequences: at most {most}, got {config.num_return_sequences}")
    if len(prime) > limits.max_prime_chars:
        raise RequestError(f"inputs / prompt: at most {limits.max_prime_chars} characters, got {len(prime)}")
    try:
        check_stops(config.stop, limits.max_stops, limits.max_stop_chars)
        return config.validate()
    except ScriptRNNError as e:
        raise RequestError(str(e)) from None


# ---------------------------------------------------------------- the answer


def tgi_reason(reason: str | None) -> str:
    return "stop_sequence" if reason == "stop" else "length"


def answer_text(g, i: int) -> str:
    """The text that continues the caller's prime (with the ':' a bare speaker name was read with)."""
    return g.continuation_prefix + g.texts[i]


def tgi_details(g, i: int = 0) -> dict:
    tokens = [{"id": t, "text": piece, "logprob": None, "special": False}
              for t, piece in zip(g.tokens[i], g.pieces[i])]
    return {"finish_reason": tgi_reason(g.finish_reasons[i]), "generated_tokens": len(g.tokens[i]),
            "seed": g.seed, "input_length": g.prompt_tokens, "prefill": [], "tokens": tokens}


def tgi_answer(g, details: bool) -> dict:
    """``/generate``'s answer for a finished generation ``g``."""
    out = {"generated_text": answer_text(g, 0)}
    if details:
        out["details"] = tgi_details(g)
        if g.n > 1:
            out["details"]["best_of_sequences"] = [
                {"generated_text": answer_text(g, i), **tgi_details(g, i)} for i in range(1, g.n)]
    return out


# ---------------------------------------------------------------- a body: bytes, then JSON


def read_json_body(data: bytes | str | None, limits: ServerLimits):
    """A request body's JSON, read by both the server and the handler: 413 over the size, 400 if unreadable."""
    data = data or b""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if len(data) > limits.max_body_bytes:
        raise RequestError(f"request body: at most {limits.max_body_bytes} bytes", 413)
    if not data.strip():
        raise RequestError("body: empty; send a JSON object", 400)
    try:
        return safe_json.loads(data)
    except safe_json.JSONLimitError as e:
        raise RequestError(f"body: {e}", 400) from None


def event_request(event: object, limits: ServerLimits) -> tuple[str, object]:
    """(method, decoded JSON body) of a serverless event, whatever its shape; 400 for a malformed one.

    API Gateway's REST APIs (payload 1.0: ``httpMethod``), HTTP APIs and function URLs
    (2.0: ``requestContext.http.method``), and a direct invocation whose event is the body.
    The body must be JSON text (a string, base64 when ``isBase64Encoded``), as the platforms send it.
    """
    if not isinstance(event, dict):
        raise RequestError(f"event: expected a JSON object (an HTTP event or a /generate body), "
                           f"got {type(event).__name__}", 400)
    if "body" not in event and "inputs" in event:
        return "POST", _checked_depth(event)
    context = event.get("requestContext", {})
    http = context.get("http", {}) if isinstance(context, dict) else None
    if not isinstance(http, dict):
        raise RequestError("event: requestContext and requestContext.http must be JSON objects", 400)
    method = event.get("httpMethod") or http.get("method") or "POST"
    if not isinstance(method, str):
        raise RequestError("event: the HTTP method must be a string", 400)
    method = method.upper()
    if method != "POST":
        return method, None
    return method, _event_body(event, limits)


def _checked_depth(body):
    """A body the platform decoded already: only its nesting is left to check."""
    try:
        safe_json.check_depth(body)
    except safe_json.JSONLimitError as e:
        raise RequestError(f"body: {e}", 400) from None
    return body


def _event_body(event: dict, limits: ServerLimits):
    raw = event.get("body")
    if raw is not None and not isinstance(raw, str):
        raise RequestError(f"event: body must be a string (JSON text), got {type(raw).__name__}", 400)
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(raw or "", validate=True)
        except (binascii.Error, ValueError):
            raise RequestError("body: not valid base64", 400) from None
    return read_json_body(raw, limits)


# ---------------------------------------------------------------- a body without pydantic


@dataclass
class TGIParameters:
    """TGI's parameters: the fields, types and bounds of ``_PARAMETERS``."""

    max_new_tokens: int | None = None
    do_sample: bool | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    stop: list[str] | None = None
    details: bool = False
    num_return_sequences: int | None = None
    stop_after_lines: int | None = None


@dataclass
class TGIBody:
    inputs: str
    parameters: TGIParameters = field(default_factory=TGIParameters)
    stream: bool = False
    model: str | None = None


# name: (kind, bound, bound's comparison); unknown fields are ignored, as the server does.
_PARAMETERS = {
    "max_new_tokens": ("int", 0, "ge"), "do_sample": ("bool", None, None), "temperature": ("float", 0, "ge"),
    "top_k": ("int", 1, "ge"), "top_p": ("float", 0, "gt"), "repetition_penalty": ("float", 0, "gt"),
    "seed": ("int", 0, "ge"), "stop": ("list[str]", None, None), "details": ("bool", None, None),
    "num_return_sequences": ("int", 1, "ge"), "stop_after_lines": ("int", 1, "ge"),
}
_BOUNDS = {"ge": (lambda v, b: v >= b, "greater than or equal to"), "gt": (lambda v, b: v > b, "greater than")}


def parse_tgi_body(body: object) -> TGIBody:
    """A decoded JSON body checked as the server checks it: RequestError (422) naming the first bad field."""
    if not isinstance(body, dict):
        raise RequestError("body: Input should be a valid dictionary or object")
    if "inputs" not in body:
        raise RequestError("inputs: Field required")
    inputs = _check("inputs", body["inputs"], "str")
    raw = body.get("parameters", {})
    if not isinstance(raw, dict):
        raise RequestError("parameters: Input should be a valid dictionary or object")
    values = {}
    for name, (kind, bound, compare) in _PARAMETERS.items():
        value = raw.get(name)
        if value is None:
            continue  # null is the default, as in the pydantic model
        values[name] = _check(f"parameters.{name}", value, kind, bound, compare)
    if values.get("top_p") is not None and values["top_p"] > 1:
        raise RequestError("parameters.top_p: Input should be less than or equal to 1")
    stream = _check("stream", body.get("stream", False), "bool")
    model = body.get("model")
    return TGIBody(inputs, TGIParameters(**values), stream, None if model is None else _check("model", model, "str"))


def _check(name: str, value, kind: str, bound=None, compare=None):
    value = _of_kind(name, value, kind)
    if bound is not None:
        holds, words = _BOUNDS[compare]
        if not holds(value, bound):  # NaN holds no bound
            raise RequestError(f"{name}: Input should be {words} {bound}")
    return value


def _of_kind(name: str, value, kind: str):
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "str" and isinstance(value, str):
        return value
    if kind == "int" and not isinstance(value, bool):
        if isinstance(value, int):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        if isinstance(value, float):
            raise RequestError(f"{name}: Input should be a valid integer, got a number with a fractional part")
    if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == "list[str]":
        if not isinstance(value, list):
            raise RequestError(f"{name}: Input should be a valid list")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise RequestError(f"{name}.{i}: Input should be a valid string")
        return value
    words = {"int": "a valid integer", "float": "a valid number", "bool": "a valid boolean", "str": "a valid string"}
    raise RequestError(f"{name}: Input should be {words[kind]}")


def tgi_json_schema() -> dict:
    """The body ``parse_tgi_body`` reads, as JSON Schema for the API docs (built from the same table)."""
    types = {"int": {"type": "integer"}, "float": {"type": "number"}, "bool": {"type": "boolean"},
             "list[str]": {"type": "array", "items": {"type": "string"}}}
    keyword = {"ge": "minimum", "gt": "exclusiveMinimum"}
    parameters = {}
    for name, (kind, bound, compare) in _PARAMETERS.items():
        parameters[name] = {**types[kind], **({keyword[compare]: bound} if bound is not None else {})}
    parameters["top_p"]["maximum"] = 1
    return {"type": "object", "required": ["inputs"], "properties": {
        "inputs": {"type": "string"}, "parameters": {"type": "object", "properties": parameters},
        "stream": {"type": "boolean"}, "model": {"type": "string"}}}
