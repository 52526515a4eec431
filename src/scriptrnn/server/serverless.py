"""A serverless function: an API-Gateway-style HTTP event in, a generated script out, no PyTorch.

The body is that of the server's ``POST /generate`` (TGI's), checked the same way
(``scriptrnn.server.protocol``), and so is the answer:

    POST {"inputs": "jerry", "parameters": {"max_new_tokens": 200, "seed": 1}}
    -> 200 {"generated_text": ": what is the deal with ..."}

Bad values get 422 naming the field, an oversized body 413, an event or body that is not
what an HTTP event or JSON can be 400 (``protocol.event_request``), another method 405; a GET
answers {"status": "ok", ...} for health checks. Events from API Gateway's REST APIs
(version 1.0), HTTP APIs and function URLs (2.0) are understood, as is a direct
invocation whose event is the body itself. ``docs/serverless.md`` says what to zip.

Settings come from the environment: ``SCRIPTRNN_MODEL_DIR`` (default: ``model`` beside
the function's code), ``SCRIPTRNN_THREADS`` (default 1) and ``SCRIPTRNN_<LIMIT>`` for
each of ``ServerLimits``' fields (``SCRIPTRNN_MAX_NEW_TOKENS=500``). The model loads at
the first request and stays loaded while the platform keeps the instance warm.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from dataclasses import fields
from pathlib import Path
from typing import Callable

from ..errors import ScriptRNNError
from ..paths import real_path
from ..generate.generation import Generation
from ..generate.script_model import ScriptModel
from ..model.loader import load_exported
from .protocol import (RequestError, ServerLimits, check_request, error_body, event_request, parse_tgi_body,
                       tgi_answer, tgi_sampling)

_HANDLERS: dict[str, Callable] = {}  # one per model directory, kept between invocations


def handler(event: object, context=None) -> dict:
    """The entry point to configure on the platform: ``scriptrnn.server.serverless.handler``."""
    model_dir = os.environ.get("SCRIPTRNN_MODEL_DIR") or str(_code_root() / "model")
    if model_dir not in _HANDLERS:
        _HANDLERS[model_dir] = make_handler(model_dir, limits_from_environment(),
                                            threads=_number_from_environment("SCRIPTRNN_THREADS", "1", int))
    return _HANDLERS[model_dir](event, context)


def _code_root() -> Path:
    # AWS Lambda unpacks the zip into LAMBDA_TASK_ROOT; elsewhere, the working directory.
    return Path(os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd())


def limits_from_environment() -> ServerLimits:
    values = {}
    for f in fields(ServerLimits):
        name = f"SCRIPTRNN_{f.name.upper()}"
        if name in os.environ:
            values[f.name] = _number_from_environment(name, "", float if f.type in (float, "float") else int)
    return ServerLimits(**values)


def _number_from_environment(name: str, default: str, kind: type):
    """A setting from the function's environment; a bad one is a one-line error in the platform's log."""
    text = os.environ.get(name, default)
    try:
        return kind(text)
    except ValueError:
        raise ScriptRNNError(f"environment variable {name}={text!r} is not a {kind.__name__} number") from None


def make_handler(model_dir, limits: ServerLimits | None = None, threads: int | None = 1) -> Callable:
    """A handler for the exported model in ``model_dir`` (loaded now, once)."""
    model = load_exported(model_dir, threads=threads)
    name = real_path(model_dir).name
    limits = limits or ServerLimits()

    def handle(event: object, context=None) -> dict:
        try:
            return _respond(200, _answer(model, name, limits, event))
        except RequestError as e:
            return _respond(e.status, error_body(str(e), e.status), e.headers)
        except Exception as e:  # a bug: logged for the platform's logs, never sent to the client
            traceback.print_exc(file=sys.stderr)
            return _respond(500, error_body(f"internal error ({type(e).__name__})", 500))

    return handle


def _answer(model: ScriptModel, name: str, limits: ServerLimits, event: object) -> dict:
    method, raw = event_request(event, limits)  # 400 for an event of the wrong shape, whatever it is
    if method == "GET":
        return {"status": "ok", "model": name}
    if method != "POST":
        raise RequestError(f"method {method} not allowed; POST a /generate body", 405, {"Allow": "GET, POST"})
    body = parse_tgi_body(raw)
    if body.stream:
        raise RequestError("stream: this function answers with the whole text; send stream false")
    if body.model not in (None, "", "tgi", name):
        raise RequestError(f"model: unknown model {body.model!r}; served: {name}", status=404)
    config = check_request(body.inputs, tgi_sampling(body.parameters, limits), limits)
    try:
        generation = Generation(model, body.inputs, config)
    except ScriptRNNError as e:  # a prime the vocabulary cannot read
        raise RequestError(str(e)) from None
    generation.run()
    return tgi_answer(generation, body.parameters.details)


def _respond(status: int, body: dict, headers: dict | None = None) -> dict:
    return {"statusCode": status, "headers": {"Content-Type": "application/json", **(headers or {})},
            "body": json.dumps(body, ensure_ascii=False), "isBase64Encoded": False}
