"""OpenAI's completions body, and the server's limits.

TGI's body (Hugging Face's ``InferenceClient``) is read by ``protocol.parse_tgi_body``,
which the serverless handler shares. Both map to one ``SamplingConfig``, so a parameter
means the same everywhere: here, on the command line and in Python. Unknown fields are
ignored, as those clients send options this server has no use for.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# ServerLimits and tgi_sampling live in protocol.py (no pydantic) for the serverless handler too.
from .protocol import ServerLimits, tgi_sampling  # noqa: F401
from ..generate.sampling import SamplingConfig


class CompletionRequest(BaseModel):
    # strict: JSON's own types only, as for TGI's body ("10" or true is not a number of tokens).
    model_config = ConfigDict(extra="ignore", strict=True)

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


def completion_sampling(r: CompletionRequest, limits: ServerLimits) -> SamplingConfig:
    stop = [r.stop] if isinstance(r.stop, str) else r.stop
    return SamplingConfig(
        max_new_tokens=limits.default_new_tokens if r.max_tokens is None else r.max_tokens,
        temperature=SamplingConfig.temperature if r.temperature is None else r.temperature,
        top_k=r.top_k,
        top_p=r.top_p,
        repetition_penalty=r.repetition_penalty,
        num_return_sequences=r.n,
        seed=r.seed,
        stop=stop or None,
        stop_after_lines=r.stop_after_lines,
    )
