"""Serving trained models over HTTP: ``scriptrnn serve DIR``.

FastAPI and uvicorn are imported only here, so training and generating never need them.
"""

from .app import create_app
from .schemas import ServerLimits

__all__ = ["ServerLimits", "create_app", "load_models", "serve"]


def load_models(model_dirs, device: str = "cpu", threads: int | None = None) -> dict:
    """Name -> ScriptModel; names are the directory names, made unique.

    Exported directories run with onnxruntime, training runs with PyTorch (imported only
    then), so a server of exported models needs no PyTorch.
    """
    from pathlib import Path

    from ..runtime import load_any

    if not model_dirs:
        from ..api import pretrained_dir  # the built-in model is a training run

        model_dirs = [pretrained_dir()]
    models = {}
    for directory in model_dirs:
        name = base = Path(directory).resolve().name
        k = 2
        while name in models:
            name, k = f"{base}-{k}", k + 1
        models[name] = load_any(directory, device=device, threads=threads)
    return models


def serve(model_dirs, *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          device: str = "cpu", threads: int | None = 1, **limits) -> None:
    """Load the models and run the app under uvicorn until interrupted."""
    import uvicorn

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
