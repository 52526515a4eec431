"""Serving models: the HTTP server (``scriptrnn serve DIR``) and the serverless handler.

Owns the app and its routes (app.py), the continuous batcher that steps every running
request together (batcher.py), the request rules both front ends share (protocol.py: limits,
checks, the answer's shape), the pydantic bodies (schemas.py), the serverless function
(serverless.py: no web framework, no PyTorch) and the page (static/). FastAPI and uvicorn
are imported only by app.py and ``serve``, so the serverless handler, training and
generating never need them; ``create_app`` is imported on first use for that reason.
"""

from .protocol import ServerLimits


def __getattr__(name: str):
    if name == "create_app":  # FastAPI: only when a server is built
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ServerLimits", "create_app", "load_models", "serve"]


def load_models(model_dirs, device: str = "cpu", threads: int | None = None) -> dict:
    """Name -> ScriptModel; names are the directory names, made unique.

    Exported directories run with onnxruntime, training runs with PyTorch (imported only
    then), so a server of exported models needs no PyTorch.
    """
    from pathlib import Path

    from ..model.loader import load, pretrained_dir

    if not model_dirs:
        model_dirs = [pretrained_dir()]  # the built-in model is a training run
    models = {}
    for directory in model_dirs:
        name = base = Path(directory).resolve().name
        k = 2
        while name in models:
            name, k = f"{base}-{k}", k + 1
        models[name] = load(directory, device=device, threads=threads)
    return models


def serve(model_dirs, *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          device: str = "cpu", threads: int | None = 1, **limits) -> None:
    """Load the models and run the app under uvicorn until interrupted."""
    import uvicorn

    from .app import create_app
    from ..errors import ScriptRNNError

    for name, value in limits.items():
        if value is None or value <= 0:
            raise ScriptRNNError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if not 0 < port < 65536:
        raise ScriptRNNError(f"--port must be from 1 to 65535, got {port}")
    app = create_app(load_models(model_dirs, device, threads), ServerLimits(**limits), api_key=api_key)
    print(f"scriptrnn: serving {', '.join(app.state.service.models)} at http://{host}:{port}/ "
          f"(API docs at /docs)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
