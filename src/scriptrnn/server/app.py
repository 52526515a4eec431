"""The FastAPI app: TGI and OpenAI-style routes, model listing, and the web page.

Every generating route does the same three things: turn its body into a prime and a
``SamplingConfig``, submit a job to the batcher, and render the job's events in its
protocol's shape (JSON at the end, or Server-Sent Events as they come).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from ..version import __version__
from ..errors import ScriptRNNError
from ..generate.generation import Generation
from ..generate.sampling import SamplingConfig
from ..generate.script_model import ScriptModel
from .protocol import (TGIBody, RequestError, ServerLimits, answer_text, check_request, error_body, parse_tgi_body,
                       read_json_body, tgi_answer, tgi_json_schema, tgi_reason, tgi_sampling)
from .batcher import Batcher, Job, QueueFull, read_events
from .guards import Guard
from .schemas import CompletionRequest, completion_sampling

STATIC = Path(str(resources.files("scriptrnn") / "server" / "static"))


def model_card(name: str, model: ScriptModel) -> dict:
    """An OpenAI model entry plus what a scriptrnn user wants to know about it."""
    record = model.config  # config.json's, checked when loaded, for PyTorch and ONNX alike
    return {"id": name, "object": "model", "created": 0, "owned_by": "scriptrnn", "level": model.level,
            **{k: record.model.get(k) for k in ("cell", "num_layers", "hidden_size", "embedding_size", "vocab_size")},
            "parameters": model.model.parameter_count(), "corpus": record.corpus.name,
            "held_out_loss": record.metrics.loss if record.metrics else None, "speakers": model.speakers[:200]}


class Service:
    """The served models, the batcher and the limits: everything a route needs."""

    def __init__(self, models: dict[str, ScriptModel], limits: ServerLimits, api_key: str | None):
        self.models, self.limits, self.api_key = models, limits, api_key
        self.default_model = next(iter(models))
        for name, model in models.items():
            check_servable(name, model)
        self.batcher = Batcher(max_queue=limits.max_queue, max_batch=limits.max_batch)

    def model(self, name: str | None) -> ScriptModel:
        if name is None or name == "" or name == "tgi":
            return self.models[self.default_model]
        if name not in self.models:
            raise RequestError(f"model: unknown model {name!r}; served: {', '.join(self.models)}", status=404)
        return self.models[name]

    def start(self, model: ScriptModel, prime: str, config: SamplingConfig, request: Request) -> Job:
        """Check limits, build the generation, queue it (503 when the queue is full), cancelled if the client goes."""
        config = check_request(prime, config, self.limits)
        try:
            generation = Generation(model, prime, config)
        except ScriptRNNError as e:
            raise RequestError(str(e)) from None
        job = Job(generation, asyncio.get_running_loop())
        try:
            self.batcher.submit(job)
        except QueueFull:
            raise RequestError("server busy: too many requests waiting; retry shortly", status=503,
                               headers={"Retry-After": "1"}) from None
        _cancel_when_gone(request, job)
        return job

    async def collect(self, job: Job) -> None:
        """Wait until a whole job is written; raise on error or timeout."""
        async for event in read_events(job, self.limits.request_timeout_s):
            if event.kind == "error":
                raise RequestError(event.message, status=event.status)


def _cancel_when_gone(request: Request, job: Job) -> None:
    """Cancel ``job`` as soon as its client disconnects, whether its answer streams or not.

    Guard has read the whole body, so the next ASGI message is ``http.disconnect``: the
    server sends it when the socket closes, or once the answer is complete (when cancelling
    a finished job changes nothing). A whole-text answer is otherwise written to the end for
    nobody, holding its place in the batch and the queue.
    """
    async def watch():
        try:
            while (await request.receive())["type"] != "http.disconnect":
                pass
        finally:
            job.cancel()

    job.watcher = asyncio.get_running_loop().create_task(watch())  # held: the loop keeps tasks weakly


def check_servable(name: str, model: ScriptModel) -> None:
    """Refuse at start-up, in one line, a model whose card no JSON answer can carry (not a 500 per request)."""
    try:
        json.dumps(model_card(name, model), allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError) as e:
        raise ScriptRNNError(f"{name}: cannot be served: its config.json or vocabulary holds values a JSON "
                             f"answer cannot carry ({str(e).splitlines()[0][:120]}); retrain or fix the file") \
            from None


async def read_body(request: Request, service: Service):
    """The request's JSON, read as the serverless handler reads it (protocol.read_json_body)."""
    return read_json_body(await request.body(), service.limits)


def _sse(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


def create_app(models: dict[str, ScriptModel], limits: ServerLimits | None = None,
               api_key: str | None = None, allowed_hosts: list[str] | None = None) -> FastAPI:
    """The app; ``allowed_hosts`` None accepts any Host header (``serve`` passes loopback names by default)."""
    if not models:
        raise ScriptRNNError("no models to serve")
    if api_key is not None and not api_key:
        raise ScriptRNNError("the API key is empty; give a key, or none to serve without one")
    service = Service(models, limits or ServerLimits(), api_key)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        service.batcher.close()  # the worker thread ends with the server

    app = FastAPI(title="scriptrnn", version=__version__, lifespan=lifespan,
                  description="Write scripts with recurrent networks: TGI and OpenAI-compatible routes.")
    app.state.service = service
    # Host, API key and body limits are checked by Guard before any route runs (guards.py).
    app.add_middleware(Guard, limits=service.limits, api_key=api_key, allowed_hosts=allowed_hosts)
    _install_error_handlers(app)
    _add_info_routes(app, service)
    _add_tgi_routes(app, service)
    _add_openai_routes(app, service)
    _add_page(app)
    return app


# ---------------------------------------------------------------- guards


def _install_error_handlers(app: FastAPI) -> None:
    """Every 4xx and 5xx in one shape (error_body), the framework's own (404, 405, 400) included."""

    @app.exception_handler(RequestError)
    async def request_error(_request, exc: RequestError):
        return _error(str(exc), exc.status, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request, exc: RequestValidationError):
        return _error(_first_error(exc.errors()), 422)

    @app.exception_handler(HTTPException)
    async def http_error(_request, exc: HTTPException):
        return _error(str(exc.detail), exc.status_code, exc.headers)

    @app.exception_handler(Exception)
    async def internal_error(_request, exc: Exception):
        return _error(f"internal error ({type(exc).__name__})", 500)  # never a stack trace


def _first_error(errors: list) -> str:
    """pydantic's first complaint as 'field: message'."""
    first = errors[0] if errors else {}
    field = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    return f"{field}: {first.get('msg', 'invalid value')}"


def _error(message: str, status: int, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, status), status_code=status, headers=headers)


# ---------------------------------------------------------------- info


def _add_info_routes(app: FastAPI, service: Service) -> None:
    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [model_card(n, m) for n, m in service.models.items()]}

    @app.get("/info")
    async def info():
        limits = service.limits
        return {"model_id": service.default_model, "models": list(service.models),
                "router": "scriptrnn", "version": __version__,
                "max_new_tokens": limits.max_new_tokens, "max_input_length": limits.max_prime_chars,
                "max_best_of": limits.max_return_sequences, "max_waiting_requests": limits.max_queue,
                "max_batch_size": limits.max_batch, "load": service.batcher.load,
                # The page shows these as its fields' placeholders: the defaults live in SamplingConfig alone.
                "sampling_defaults": {"temperature": SamplingConfig.temperature, "top_k": SamplingConfig.top_k,
                                      "top_p": SamplingConfig.top_p}}


# ---------------------------------------------------------------- TGI


def _add_tgi_routes(app: FastAPI, service: Service) -> None:
    # The body is read by protocol.parse_tgi_body, the serverless handler's check too, so both
    # accept and refuse the same bodies; the schema is only for the API docs.
    documented = {"requestBody": {"required": True, "content": {"application/json": {"schema": tgi_json_schema()}}}}

    @app.post("/generate", openapi_extra=documented)
    async def generate(request: Request):
        return await _tgi_whole(service, parse_tgi_body(await read_body(request, service)), request)

    @app.post("/generate_stream", openapi_extra=documented)
    async def generate_stream(request: Request):
        return _tgi_stream(service, parse_tgi_body(await read_body(request, service)), request)

    @app.post("/", openapi_extra=documented)
    async def compat(request: Request):
        # TGI's compatibility route, which InferenceClient(base_url) posts to.
        body = parse_tgi_body(await read_body(request, service))
        if body.stream:
            return _tgi_stream(service, body, request)
        return [await _tgi_whole(service, body, request)]


def _tgi_job(service: Service, body: TGIBody, request: Request) -> Job:
    config = tgi_sampling(body.parameters, service.limits)
    return service.start(service.model(body.model), body.inputs, config, request)


def _openai_reason(reason: str | None) -> str:
    return "stop" if reason == "stop" else "length"


async def _tgi_whole(service: Service, body: TGIBody, request: Request) -> dict:
    job = _tgi_job(service, body, request)
    await service.collect(job)
    return tgi_answer(job.generation, body.parameters.details)


def _tgi_stream(service: Service, body: TGIBody, request: Request) -> StreamingResponse:
    """TGI's event stream: one event per token of the first sequence, the last with the details."""
    job = _tgi_job(service, body, request)  # errors before the stream starts are plain 4xx/5xx answers

    async def events():
        g = job.generation
        text, count = "", 0
        async for event in read_events(job, service.limits.request_timeout_s):
            if event.kind == "error":
                yield _sse({"error": event.message, "error_type": "generation"})
                return
            if event.kind != "tokens":
                continue
            piece = (g.continuation_prefix if count == 0 else "") + event.pieces[0]
            text += piece
            count += 1
            reason = event.reasons[0]
            token = {"id": event.ids[0], "text": piece, "logprob": None, "special": False}
            details = None
            if reason is not None:
                details = {"finish_reason": tgi_reason(reason), "generated_tokens": count, "seed": g.seed,
                           "input_length": g.prompt_tokens}
            yield _sse({"index": count, "token": token, "generated_text": text if details else None,
                        "details": details, "top_tokens": None})
            if details:
                return

    return StreamingResponse(events(), media_type="text/event-stream")


# ---------------------------------------------------------------- OpenAI


def _add_openai_routes(app: FastAPI, service: Service) -> None:
    documented = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": CompletionRequest.model_json_schema()}}}}

    @app.post("/v1/completions", openapi_extra=documented)
    async def completions(request: Request):
        try:
            body = CompletionRequest.model_validate(await read_body(request, service))
        except ValidationError as e:
            raise RequestError(_first_error(e.errors())) from None
        if isinstance(body.prompt, list) and len(body.prompt) > 1:
            raise RequestError("prompt: one prompt per request (send n for several texts from one prompt)")
        prompt = body.prompt if isinstance(body.prompt, str) else "".join(body.prompt)
        name = body.model or service.default_model
        model = service.model(name)
        config = completion_sampling(body, service.limits)
        job = service.start(model, prompt, config, request)
        meta = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()),
                "model": name}
        if body.stream:
            return StreamingResponse(_openai_stream(service, job, meta), media_type="text/event-stream")
        await service.collect(job)
        return {**meta, "choices": [_choice(job.generation, i, config) for i in range(job.generation.n)],
                "usage": _usage(job.generation)}


def _trim_stop(text: str, stop: list[str] | None) -> str:
    """OpenAI leaves the stop sequence out of the text."""
    for s in stop or []:
        at = text.find(s)
        if at >= 0:
            text = text[:at]
    return text


def _choice(g: Generation, i: int, config: SamplingConfig) -> dict:
    return {"text": _trim_stop(answer_text(g, i), config.stop), "index": i, "logprobs": None,
            "finish_reason": _openai_reason(g.finish_reasons[i])}


def _usage(g: Generation) -> dict:
    completion = sum(len(t) for t in g.tokens)
    return {"prompt_tokens": g.prompt_tokens, "completion_tokens": completion,
            "total_tokens": g.prompt_tokens + completion}


async def _openai_stream(service: Service, job: Job, meta: dict):
    """OpenAI's chunks: text as it comes for each of the n choices, then [DONE]."""
    n, stop = job.generation.n, job.generation.config.stop
    texts, sent, finished = [job.generation.continuation_prefix] * n, [0] * n, [False] * n
    async for event in read_events(job, service.limits.request_timeout_s):
        if event.kind == "error":
            yield _sse({"error": {"message": event.message, "type": "server_error"}})
            return
        if event.kind != "tokens":
            continue
        for i in range(n):
            if finished[i]:
                continue
            texts[i] += event.pieces[i]
            reason = event.reasons[i]
            # Hold back text that could be the start of a stop sequence until it is decided.
            text = _trim_stop(texts[i], stop)
            ready = len(text) if reason or not stop else max(sent[i], len(text) - max(map(len, stop)) + 1)
            if reason is not None:
                finished[i] = True
                reason = _openai_reason(reason)
            if ready > sent[i] or reason:
                yield _sse({**meta, "choices": [{"text": text[sent[i]:ready], "index": i, "logprobs": None,
                                                 "finish_reason": reason}]})
                sent[i] = ready
    yield _sse("[DONE]")


# ---------------------------------------------------------------- page


def _add_page(app: FastAPI) -> None:
    # The page and its assets hold no data, so they are served without the API key;
    # the page asks for the key and sends it with every API call.
    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon():  # browsers ask for it; no icon beats a 404 in the log
        return Response(status_code=204)

    # The page's files, listed once: a requested name is only looked up here and never reaches the file
    # system, so no name (256 letters, a NUL, '..') can make a stat fail with a 500.
    assets = {path.name: path for path in STATIC.iterdir() if path.is_file()}

    @app.get("/static/{name}", include_in_schema=False)
    async def asset(name: str):
        if name not in assets:
            raise RequestError(f"no such file: {name[:100]}", status=404)
        return FileResponse(assets[name])
