"""Serving trained models over HTTP: ``scriptrnn serve DIR``.

FastAPI and uvicorn are imported only here, so training and generating never need them.
"""

from .app import create_app
from .schemas import ServerLimits

__all__ = ["ServerLimits", "create_app", "load_models", "serve"]


def load_models(model_dirs, device: str = "cpu") -> dict:
    """Name -> ScriptModel; names are the directory names, made unique."""
    from pathlib import Path

    from ..api import load, pretrained_dir

    models = {}
    for directory in model_dirs or [pretrained_dir()]:
        name = base = Path(directory).resolve().name
        k = 2
        while name in models:
            name, k = f"{base}-{k}", k + 1
        models[name] = load(directory, device=device)
    return models


def serve(model_dirs, *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          device: str = "cpu", threads: int | None = 1, **limits) -> None:
    """Load the models and run the app under uvicorn until interrupted."""
    import torch
    import uvicorn

    from ..errors import ScriptRNNError

    for name, value in limits.items():
        if value is None or value <= 0:
            raise ScriptRNNError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if not 0 < port < 65536:
        raise ScriptRNNError(f"--port must be from 1 to 65535, got {port}")
    if threads is not None:
        if not 1 <= threads <= 1024:
            raise ScriptRNNError(f"--threads must be from 1 to 1024, got {threads}")
        torch.set_num_threads(threads)
    app = create_app(load_models(model_dirs, device), ServerLimits(**limits), api_key=api_key)
    print(f"scriptrnn: serving {', '.join(app.state.service.models)} at http://{host}:{port}/ "
          f"(API docs at /docs)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
