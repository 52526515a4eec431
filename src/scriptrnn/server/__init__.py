"""Serving models: the HTTP server (``scriptrnn serve DIR``) and the serverless handler.

Owns the app and its routes (app.py), the continuous batcher that steps every running
request together (batcher.py), what every request passes before a route sees it (guards.py:
hosts, keys, body limits, slow clients), the request rules both front ends share (protocol.py: limits,
checks, the answer's shape), the pydantic bodies (schemas.py), the serverless function
(serverless.py: no web framework, no PyTorch) and the page (static/). FastAPI and uvicorn
are imported only by app.py and ``serve``, so the serverless handler, training and
generating never need them; ``create_app`` is imported on first use for that reason.
"""

import os

from ..errors import ScriptRNNError
from ..paths import real_path
from .protocol import ServerLimits


def __getattr__(name: str):
    if name == "create_app":  # FastAPI: only when a server is built
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ServerLimits", "api_key_from", "create_app", "load_models", "serve"]

KEY_VARIABLE = "SCRIPTRNN_API_KEY"


def load_models(model_dirs, device: str = "cpu", threads: int | None = None) -> dict:
    """Name -> ScriptModel; names are the directory names, made unique.

    Exported directories run with onnxruntime, training runs with PyTorch (imported only
    then), so a server of exported models needs no PyTorch.
    """
    from ..model.loader import load, pretrained_dir

    if not model_dirs:
        model_dirs = [pretrained_dir()]  # the built-in model is a training run
    models = {}
    for directory in model_dirs:
        name = base = real_path(directory).name
        k = 2
        while name in models:
            name, k = f"{base}-{k}", k + 1
        models[name] = load(directory, device=device, threads=threads)
    return models


def api_key_from(flag: str | None = None, file=None, environ=os.environ) -> str | None:
    """The API key from --api-key, --api-key-file or SCRIPTRNN_API_KEY (None: serve without one).

    An empty key is refused wherever it comes from: ``--api-key "$KEY"`` with KEY unset
    must not quietly serve an open server. The file and the variable keep the key out of ``ps``.
    """
    from ..files import read_regular

    given = [name for name, value in (("--api-key", flag), ("--api-key-file", file)) if value is not None]
    if len(given) > 1:
        raise ScriptRNNError("give the API key one way: --api-key or --api-key-file")
    if file is not None:
        key, where = read_regular(file, "the API key", 4096).decode("utf-8", "replace").strip(), f"{file}"
    elif flag is not None:
        key, where = flag, "--api-key"
    elif KEY_VARIABLE in environ:
        key, where = environ[KEY_VARIABLE], KEY_VARIABLE
    else:
        return None
    if not key.strip():
        raise ScriptRNNError(f"the API key from {where} is empty; give a key, or leave out --api-key, "
                             f"--api-key-file and {KEY_VARIABLE} to serve without one")
    return key


def serve(model_dirs, *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          device: str = "cpu", threads: int | None = 1, allowed_hosts: list[str] | None = None,
          **limits) -> None:
    """Load the models and run the app under uvicorn until interrupted.

    ``allowed_hosts``: Host header values to answer (None: loopback names when bound to
    loopback, any otherwise; ["*"]: any).
    """
    import uvicorn

    from .app import create_app
    from .guards import default_allowed_hosts, server_config

    server_limits = ServerLimits(**limits)  # each limit finite and above 0, before the models load
    if not 0 < port < 65536:
        raise ScriptRNNError(f"--port must be from 1 to 65535, got {port}")
    if api_key is not None and not api_key.strip():
        raise ScriptRNNError("the API key is empty; give a key, or none to serve without one")
    hosts = allowed_hosts if allowed_hosts else default_allowed_hosts(host)
    app = create_app(load_models(model_dirs, device, threads), server_limits, api_key=api_key,
                     allowed_hosts=hosts)
    access = ("keyed: every route but /health and the page needs 'Authorization: Bearer KEY'" if api_key else
              f"open: no API key, anyone who can reach {host}:{port} may generate "
              f"(set {KEY_VARIABLE} or --api-key-file to require one)")
    print(f"scriptrnn: serving {', '.join(app.state.service.models)} at http://{host}:{port}/ "
          f"(API docs at /docs)\nscriptrnn: {access}\nscriptrnn: Host headers answered: "
          f"{', '.join(hosts) if hosts else 'any (--allowed-hosts to limit them)'}", flush=True)
    uvicorn.Server(server_config(app, host, port, server_limits)).run()
