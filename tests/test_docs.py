"""The commands in README.md and docs/ are run, on tiny data, so the docs cannot drift from the code.

The convention (also in docs/index.md): a comment on the line just before a fenced block says
what the test does with it.

    <!-- test -->                  run it (```bash through bash, ```python in a fresh Python)
    <!-- skip: why not -->         do not run it; the reason is required
    <!-- file: NAME -->            write the block's text to NAME before any block runs (a manifest
                                   or study file that a runnable block of the same page reads)

Every ```bash, ```sh, ```console and ```python block must carry `test` or `skip: reason`, so a
new page cannot leave a command untested by accident (test_every_code_block_is_marked). Blocks
in other languages, or with none, are output, file trees or data and are left alone.

Each page runs in a fresh temporary directory, its runnable blocks in document order (so one
block can train a run that the next one writes from), with tiny made-up corpora under the names
the docs use (FILES). What makes a documented command tiny is explicit and small:
- SUBSTITUTIONS rewrite the text of a block (installs dropped, minutes turned into 2 steps);
- `scriptrnn` is a shell function that runs `python -m scriptrnn` with this interpreter (so the
  code under test is this checkout's) and appends TINY_FLAGS to every `train` (TINY_FINETUNE_FLAGS to a
  `train --init-from`, whose shape is its parent's) (argparse takes
  the last value, so they win over the documented sizes; a `--resume` is left as written);
- in Python blocks `scriptrnn.train` is wrapped to take TINY_KWARGS the same way.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import DIALOGUE

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CHECKED_LANGUAGES = {"bash", "sh", "shell", "console", "python", "py"}

# (pattern, replacement, why): applied to the text of every runnable block, in this order.
SUBSTITUTIONS = [
    (r"python3 -m pip install [^&\n]*&&\s*", "", "the test environment is already installed"),
    (r"^\s*python3? -m pip install .*$", ": pip install left out", "the same, as a line of its own"),
    (r"--time-budget \d+(\.\d+)?", "--max-steps 2", "minutes of training become 2 steps"),
    (r"time_budget=\d+(\.\d+)?", "max_steps=2", "the same, in Python"),
]

TINY_FLAGS = ("--hidden-size 16 --embedding-size 8 --layers 1 --seq-len 8 --batch-size 4 --max-steps 2 "
              "--eval-every 2 --eval-tokens 200 --quiet")
TINY_KWARGS = dict(hidden_size=16, embedding_size=8, num_layers=1, seq_len=8, batch_size=4, max_steps=2,
                   eval_every=2, eval_tokens=200, progress=False)
# A fine-tuned run takes its shape from its parent (--init-from): only the budget is made tiny.
TINY_FINETUNE_FLAGS = "--seq-len 8 --batch-size 4 --max-steps 2 --eval-every 2 --eval-tokens 200 --quiet"

BASH_PRELUDE = f"""
set -euo pipefail
scriptrnn() {{
    if [ "${{1:-}}" = train ] && [[ " $* " == *" --init-from"* ]]; then
        shift; set -- train "$@" {TINY_FINETUNE_FLAGS}
    elif [ "${{1:-}}" = train ] && [[ " $* " != *" --resume"* ]]; then
        shift; set -- train "$@" {TINY_FLAGS}
    fi
    "$PYTHON" -m scriptrnn "$@"
}}
"""

PYTHON_PRELUDE = f"""
import scriptrnn
_train = scriptrnn.train
def _tiny_train(*args, **kwargs):
    return _train(*args, **{{**kwargs, **{TINY_KWARGS!r}}})
scriptrnn.train = _tiny_train
"""

OTHER_SPEECHES = (
    "homer: d'oh! marge, where is the beer?\n"
    "marge: homer, the kids are watching.\n"
    "bart: eat my shorts, man.\n"
    "lisa: dad, that is not how the saxophone works.\n"
)
PROSE = ("Happy families are all alike; every unhappy family is unhappy in its own way. "
         "Everything was in confusion in the Oblonskys' house.\n")
FOUNTAIN = """Title: Pilot

INT. JERRY'S APARTMENT - DAY

Jerry stands at the window. He sighs.

JERRY
(to himself)
What is the deal with airline food?

GEORGE
I am not a man of the sea!

CUT TO:
"""

# The data files the docs name, made up and tiny.
FILES = {
    "Seinfeld_Scripts.txt": DIALOGUE * 60,
    "simpsons.txt": OTHER_SPEECHES * 60,
    "anna_karenina.txt": PROSE * 60,
    "pilot.fountain": FOUNTAIN * 20,
    "episode2.fountain": FOUNTAIN.replace("Pilot", "Episode 2") * 20,
}


# Pages that start from a run trained elsewhere (docs/training.md's `runs/seinfeld`): they get a
# tiny word-level one, trained once for the session.
NEEDS_RUN = {"docs/export.md", "docs/serverless.md"}


@dataclass
class Block:
    page: Path
    line: int        # 1-based line of the opening fence
    language: str
    marker: str      # "test", "skip: ...", "file: ..." or "" (none)
    text: str

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


FENCE = re.compile(r"^(\s*)```(\S*)")
MARKER = re.compile(r"^\s*<!--\s*(.*?)\s*-->\s*$")


def code_blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").split("\n")
    blocks, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        marker = MARKER.match(lines[i - 1]) if i else None
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        assert end is not None, f"{page.relative_to(ROOT)}:{i + 1}: a code block that never closes"
        blocks.append(Block(page, i + 1, fence.group(2).lower(), marker.group(1) if marker else "",
                            "\n".join(lines[i + 1:end]) + "\n"))
        i = end + 1
    return blocks


def tiny(text: str) -> str:
    for pattern, replacement, _why in SUBSTITUTIONS:
        text = re.sub(pattern, replacement, text, flags=re.M)
    return text


def run_block(block: Block, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1",
           # this checkout's code, whatever copy of scriptrnn is installed
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    if block.language in ("python", "py"):
        argv = [sys.executable, "-c", PYTHON_PRELUDE + tiny(block.text)]
    else:
        argv = ["bash", "-c", BASH_PRELUDE + tiny(block.text)]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_every_code_block_is_marked():
    unmarked, bad = [], []
    for page in PAGES:
        for block in code_blocks(page):
            if block.marker.startswith("file:"):
                if not block.marker[5:].strip():
                    bad.append(f"{block.where()}: `file:` needs a name")
                continue
            if block.language not in CHECKED_LANGUAGES:
                continue
            if block.marker == "test":
                continue
            if block.marker.startswith("skip:") and block.marker[5:].strip():
                continue
            (bad if block.marker else unmarked).append(block.where())
    assert not unmarked, ("code blocks with neither <!-- test --> nor <!-- skip: reason --> on the line "
                          f"before: {unmarked}")
    assert not bad, f"markers that are neither `test`, `skip: reason` nor `file: NAME`: {bad}"


def _runnable_pages():
    return [page for page in PAGES if any(b.marker == "test" for b in code_blocks(page))]


@pytest.fixture(scope="session")
def seinfeld_run(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("seinfeld")
    (where / "Seinfeld_Scripts.txt").write_text(FILES["Seinfeld_Scripts.txt"], encoding="utf-8")
    train = Block(ROOT, 0, "bash", "test", "scriptrnn train Seinfeld_Scripts.txt --level word --out runs/seinfeld\n")
    done = run_block(train, where)
    assert done.returncode == 0, done.stderr
    return where / "runs" / "seinfeld"


@pytest.mark.parametrize("page", _runnable_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_runnable_blocks_run(page, tmp_path, request):
    for name, text in FILES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    if str(page.relative_to(ROOT)) in NEEDS_RUN:
        shutil.copytree(request.getfixturevalue("seinfeld_run"), tmp_path / "runs" / "seinfeld")
    blocks = code_blocks(page)
    for block in blocks:  # files first: a page may show a manifest after the command that reads it
        if block.marker.startswith("file:"):
            (tmp_path / block.marker[5:].strip()).write_text(block.text, encoding="utf-8")
    for block in blocks:
        if block.marker == "test":
            done = run_block(block, tmp_path)
            assert done.returncode == 0, (f"{block.where()} failed ({done.returncode}):\n{tiny(block.text)}\n"
                                          f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}")
