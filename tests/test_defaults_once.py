"""Every default written once: a dataclass's default is not written again as a literal elsewhere in src/.

Read from the source with ``ast``. A default is a dataclass field given a literal (``speaker_column: str =
"Character"``); it is written again where the same name gets the same literal as a default: a function's
parameter, another dataclass's field, an ``add_argument("--speaker-column", default=...)`` or a
``.get("speaker_column", ...)`` fallback. Matching the name as well as the value keeps unrelated settings
that happen to share a value (dropout 0.1, val_fraction 0.1) apart. A ``DEFAULT_*`` constant's float written
as a literal default anywhere counts too (--dist-timeout's 600 beside distributed.DEFAULT_TIMEOUT_S).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "scriptrnn"

# Zero and one (and False/True, None) are the absence of a setting (a seed of 0, a step count from 0, one
# process), not a chosen value: a function starting from them restates no one's decision.
NEUTRAL = {0, 1}
# (module, name): why that literal may stay. Empty now; a new entry needs a reason a reader accepts.
ALLOWED: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _literal(node):
    """A chosen literal value (str, int, float), or None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float)) \
            and not isinstance(node.value, bool) and node.value != "" and node.value not in NEUTRAL:
        return node.value
    return None


def _is_dataclass(node: ast.ClassDef) -> bool:
    for decorator in node.decorator_list:
        f = decorator.func if isinstance(decorator, ast.Call) else decorator
        if getattr(f, "id", None) == "dataclass" or getattr(f, "attr", None) == "dataclass":
            return True
    return False


def _fields(module: str, tree: ast.Module):
    """(name, value, where, home) for every dataclass field with a literal default."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and _is_dataclass(node):
            for st in node.body:
                if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name) \
                        and (value := _literal(st.value)) is not None:
                    yield st.target.id, value, f"{module}:{st.lineno}", f"{module}.{node.name}.{st.target.id}"


def _defaults(module: str, tree: ast.Module):
    """(name, value, where) for every literal default given outside dataclasses."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            positional = a.posonlyargs + a.args
            pairs = list(zip(positional[len(positional) - len(a.defaults):], a.defaults))
            pairs += [(arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
            for arg, default in pairs:
                if (value := _literal(default)) is not None:
                    yield arg.arg, value, f"{module}:{default.lineno}"
        elif isinstance(node, ast.Call):
            keywords = {k.arg: k.value for k in node.keywords}
            if "default" in keywords and (value := _literal(keywords["default"])) is not None:
                flags = [a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("--")]
                dest = keywords.get("dest")
                name = dest.value if isinstance(dest, ast.Constant) else flags[0][2:].replace("-", "_") if flags else ""
                yield name, value, f"{module}:{node.lineno}"
            if getattr(node.func, "attr", None) == "get" and len(node.args) == 2 \
                    and isinstance(node.args[0], ast.Constant) and (value := _literal(node.args[1])) is not None:
                yield node.args[0].value, value, f"{module}:{node.lineno}"


def _constants(module: str, tree: ast.Module):
    for st in tree.body:
        if isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name) \
                and "DEFAULT" in st.targets[0].id and isinstance(value := _literal(st.value), float):
            yield value, f"{module}.{st.targets[0].id}"


def repeated_defaults(trees: dict[str, ast.Module]) -> list[str]:
    """Each place a default is written a second time, saying whose it is."""
    homes, constants, again = {}, {}, []
    for module, tree in sorted(trees.items()):
        constants.update({value: home for value, home in _constants(module, tree)})
        for name, value, where, home in _fields(module, tree):
            if (name, value) in homes:
                again.append((name, value, where))
            else:
                homes[(name, value)] = home
        again += list(_defaults(module, tree))
    found = []
    for name, value, where in again:
        home = homes.get((name, value)) or (constants.get(value) if isinstance(value, float) else None)
        if home and (where.split(":")[0], name) not in ALLOWED:
            found.append(f"{where}: {name} = {value!r} repeats {home}")
    return found


def test_no_default_is_written_twice():
    trees = {_module_name(p): ast.parse(p.read_text(encoding="utf-8")) for p in PACKAGE.rglob("*.py")}
    found = repeated_defaults(trees)
    assert not found, "read these from their dataclass instead:\n" + "\n".join(found)


def test_the_check_finds_a_repeated_default():
    trees = {name: ast.parse(code) for name, code in {
        "a": "from dataclasses import dataclass\n@dataclass\nclass F:\n    speaker: str = 'Character'\n"
             "    dropout: float = 0.1\n    seed: int = 0\nDEFAULT_WAIT_S = 600.0\n",
        "b": "def read(path, *, speaker='Character', val_fraction=0.1, seed=0):\n    pass\n"
             "p.add_argument('--speaker', default='Character')\np.add_argument('--wait', default=600.0)\n"
             "x = config.get('speaker', 'Character')\ny = config.get('speaker', F.speaker)\n",
    }.items()}
    assert repeated_defaults(trees) == [
        "b:1: speaker = 'Character' repeats a.F.speaker",  # the parameter
        "b:3: speaker = 'Character' repeats a.F.speaker",  # the flag
        "b:4: wait = 600.0 repeats a.DEFAULT_WAIT_S",
        "b:5: speaker = 'Character' repeats a.F.speaker",  # the fallback
    ]  # val_fraction shares dropout's value but not its name; seed = 0 is neutral; F.speaker is read, not written
