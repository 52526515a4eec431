"""Request bodies of the two protocols clients already speak, and the server's limits.

Text-generation-inference (Hugging Face's ``InferenceClient``) and OpenAI's
completions API. Both map to one ``SamplingConfig``, so a parameter means the same
everywhere: here, on the command line and in Python. Unknown fields are ignored, as
those clients send options this server has no use for.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from ..sampling import SamplingConfig


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


class TGIParameters(BaseModel):
    model_config = ConfigDict(extra="ignore")

    max_new_tokens: int | None = Field(None, ge=0)
    do_sample: bool | None = None
    temperature: float | None = Field(None, ge=0)
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0, le=1)
    repetition_penalty: float | None = Field(None, gt=0)
    seed: int | None = Field(None, ge=0)
    stop: list[str] | None = None
    details: bool = False
    num_return_sequences: int | None = Field(None, ge=1)  # scriptrnn extension (TGI has best_of)
    stop_after_lines: int | None = Field(None, ge=1)  # scriptrnn extension


class TGIRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    inputs: str
    parameters: TGIParameters = Field(default_factory=TGIParameters)
    stream: bool = False
    model: str | None = None  # scriptrnn extension: which served model (default: the first)


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    prompt: str | list[str] = ""
    max_tokens: int | None = Field(None, ge=0)
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=1)  # not OpenAI's, but the page and curl users want it
    n: int = Field(1, ge=1)
    seed: int | None = Field(None, ge=0)
    stop: str | list[str] | None = None
    stream: bool = False
    repetition_penalty: float | None = Field(None, gt=0)
    stop_after_lines: int | None = Field(None, ge=1)


def tgi_sampling(p: TGIParameters, limits: ServerLimits) -> SamplingConfig:
    return SamplingConfig(
        max_new_tokens=limits.default_new_tokens if p.max_new_tokens is None else p.max_new_tokens,
        do_sample=True if p.do_sample is None else p.do_sample,
        temperature=0.8 if p.temperature is None else p.temperature,
        top_k=p.top_k,
        top_p=p.top_p,
        repetition_penalty=p.repetition_penalty,
        num_return_sequences=p.num_return_sequences or 1,
        seed=p.seed,
        stop=p.stop or None,
        stop_after_lines=p.stop_after_lines,
    )


def completion_sampling(r: CompletionRequest, limits: ServerLimits) -> SamplingConfig:
    stop = [r.stop] if isinstance(r.stop, str) else r.stop
    return SamplingConfig(
        max_new_tokens=limits.default_new_tokens if r.max_tokens is None else r.max_tokens,
        temperature=0.8 if r.temperature is None else r.temperature,
        top_k=r.top_k,
        top_p=r.top_p,
        repetition_penalty=r.repetition_penalty,
        num_return_sequences=r.n,
        seed=r.seed,
        stop=stop or None,
        stop_after_lines=r.stop_after_lines,
    )
