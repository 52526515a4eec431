"""TGI's ``/generate`` without a web framework: the limits, the checks and the answer's shape.

The server (FastAPI, with pydantic bodies) and the serverless handler (no web
framework, no pydantic: ``scriptrnn.runtime.serverless``) share these, so a request
is refused or answered the same way by both. ``parse_tgi_body`` is the handler's
stand-in for the server's pydantic model: the same fields, bounds and messages, for
bodies that use JSON's own types (pydantic also reads numbers written as strings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ScriptRNNError
from ..generate.sampling import SamplingConfig


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


# ---------------------------------------------------------------- a body without pydantic


@dataclass
class TGIParameters:
    """The fields, types and bounds of the server's ``schemas.TGIParameters``."""

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
