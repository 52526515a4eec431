"""The ``scriptrnn`` command: parse arguments, call the API, print results.

The flags live in parser.py (one subparser per command, defaults read from their config
dataclasses), the commands in commands.py (each calls the API and prints); this file wires
them together in ``main``.

Every user-fixable problem arrives here as ScriptRNNError and leaves as one
line on stderr with exit status 2.
"""

from __future__ import annotations

import sys

from ..errors import ScriptRNNError
from ..extras import EXTRA_OF, missing_message
from .commands import (EXIT_INTERRUPTED, EXIT_USAGE, cmd_corpus, cmd_evaluate, cmd_export, cmd_generate, cmd_info,
                       cmd_push, cmd_serve, cmd_share, cmd_sweep, cmd_train)
from .parser import build_parser

__all__ = ["build_parser", "main"]


COMMANDS = {"train": cmd_train, "generate": cmd_generate, "evaluate": cmd_evaluate, "corpus": cmd_corpus,
            "serve": cmd_serve, "info": cmd_info, "sweep": cmd_sweep, "export": cmd_export,
            "push": cmd_push, "share": cmd_share}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed, for "resume with:" hints
    # (serve is left to uvicorn, which handles its own signals.)
    restore = _terminate_as_interrupt() if args.command != "serve" else (lambda: None)
    try:
        return COMMANDS[args.command](args)
    except ScriptRNNError as e:
        if not getattr(e, "echoed", False):  # (rank 0 of a torchrun job printed this one already)
            print(f"scriptrnn: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\nscriptrnn: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0  # e.g. piped into `head`
    except ModuleNotFoundError as e:  # an optional part not installed: say which extra brings it
        root = (e.name or "").split(".")[0]
        if root not in EXTRA_OF:
            raise
        hint = " (or give a directory `scriptrnn export` wrote)" if root == "torch" and args.command in (
            "generate", "serve") else ""
        print(f"scriptrnn: error: {missing_message(root, f'`scriptrnn {args.command}`')}{hint}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # a full disk, a folder we may not write: the user's to fix, in one line
        where = f" ({e.filename})" if e.filename else ""
        print(f"scriptrnn: error: {e.strerror or e}{where}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        restore()


def _terminate_as_interrupt():
    """SIGTERM ends the command the way Ctrl-C does (training installs its own save-and-stop handler)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)
