"""Reading JSON that may be hostile: bounded nesting and number sizes, one-line errors.

Every JSON the project reads goes through ``loads``: model files (config.json,
tokenizer.json) and request bodies (the server and the serverless handler). Python's
own parser has two ways to fail that are not ``JSONDecodeError``: nesting deep enough
to raise ``RecursionError``, and an integer of more than 4,300 digits, which raises
``ValueError`` from ``int()``. Both become a ``ScriptRNNError`` here, and both are
refused well before those points, at limits no real file or request comes near.
"""

from __future__ import annotations

import json

from .errors import ScriptRNNError

MAX_DEPTH = 64  # arrays and objects inside each other; ours nest 4 deep at most
MAX_NUMBER_CHARS = 100  # digits of one number: a float64 needs 17, a seed 20


class JSONLimitError(ScriptRNNError):
    """Not JSON, or JSON beyond the limits: the message says which, in one line."""


def _number(kind):
    def parse(text: str):
        if len(text) > MAX_NUMBER_CHARS:
            raise JSONLimitError(f"a number of {len(text)} characters (at most {MAX_NUMBER_CHARS})")
        return kind(text)
    return parse


_PARSE = {"parse_int": _number(int), "parse_float": _number(float)}


def loads(data: str | bytes, max_depth: int = MAX_DEPTH):
    """``json.loads`` with the limits above; JSONLimitError (no location prefix) on any failure."""
    try:
        value = json.loads(data, **_PARSE)
    except JSONLimitError:
        raise
    except RecursionError:
        raise JSONLimitError(f"JSON nested deeper than {max_depth} levels") from None
    except UnicodeDecodeError:
        raise JSONLimitError("not valid JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as e:
        raise JSONLimitError(f"not valid JSON ({e})") from None
    except ValueError as e:  # int() refusing digits, whatever the limit above
        raise JSONLimitError(f"not valid JSON ({str(e).splitlines()[0][:100]})") from None
    check_depth(value, max_depth)
    return value


def check_depth(value, max_depth: int = MAX_DEPTH) -> None:
    """Refuse containers nested deeper than ``max_depth`` (iteratively: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            raise JSONLimitError(f"JSON nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children)
