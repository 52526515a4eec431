"""The model card: README.md in the Hugging Face Hub's format, written from the run's own config.json.

Written when a run ends (training/setup.py) and by ``scriptrnn export``; ``push`` fills in the
repository's name. The YAML front matter is what the Hub indexes (library, task, tags,
model-index metrics); the body says what the model is from the run's record: the command,
the corpus's fingerprint and size (never its text), the machine, the time, a real sample it
wrote and how to load it. The licence is the user's to choose, so the card leaves it out and
says so. Strings go into the YAML as JSON strings, which YAML reads as the same strings.
"""

from __future__ import annotations

import json
import math
import platform
import shlex
import sys
from pathlib import Path

from .download import CARD_FILE, PREFIX

PLACEHOLDER = "OWNER/NAME"  # the repository, until push knows it
# The text report's figures the card lists (evaluation/text_report.py: TextMeasures), with their names.
TEXT_FIGURES = {"known_speakers": "known speakers (share of speaker lines)", "real_words": "real words (share)",
                "distinct_1": "distinct-1", "distinct_2": "distinct-2", "distinct_3": "distinct-3",
                "longest_copy_chars": "longest copy from the training text (characters)"}


def invocation() -> str:
    """The command that started this process, as typed (a run's record), or the Python call it came from."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if program in ("scriptrnn", "__main__.py"):
        return shlex.join(["scriptrnn", *sys.argv[1:]])
    return "scriptrnn.train(...) from Python"


def machine(device: str) -> str:
    """The machine a run trained on, in a line: system, processor, cores, and the GPU when it used one."""
    import os

    where = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU threads"
    if device.startswith("cuda"):
        import torch

        where += f", {torch.cuda.get_device_name(device)}"
    return f"{where}; trained on {device}"


def card_text(config: dict, *, repo_id: str = PLACEHOLDER, sample: str | None = None,
              text: dict | None = None) -> str:
    """README.md for a run's (or an export's) config.json; ``text``: a text report's sample figures."""
    return f"---\n{_front_matter(config, repo_id, text)}---\n\n{_body(config, repo_id, sample, text)}"


def write_card(directory: Path, config: dict, *, sample: str | None = None, text: dict | None = None) -> Path | None:
    """Write (or replace) the card in ``directory``; a README.md scriptrnn did not write is left alone (None)."""
    from ..files import write_atomic

    path = Path(directory) / CARD_FILE
    if (path.exists() or path.is_symlink()) and not is_card(path):
        return None  # e.g. --out . in someone's project
    write_atomic(path, card_text(config, sample=sample, text=text).encode("utf-8"))
    return path


def is_card(path: Path) -> bool:
    """True for a README.md that scriptrnn wrote (its front matter starts with our library's name)."""
    if not path.is_file():  # (a FIFO would block the read)
        return False
    try:
        with open(path, "rb") as f:
            return f.read(len(_FIRST_LINES)) == _FIRST_LINES
    except OSError:
        return False


_FIRST_LINES = b"---\nlibrary_name: scriptrnn\n"


def named_card(card: str, repo_id: str) -> str:
    """A card written before its repository was known, with the repository's name in it."""
    return card.replace(f"{PREFIX}{PLACEHOLDER}", f"{PREFIX}{repo_id}").replace(
        f'"{PLACEHOLDER}"', json.dumps(repo_id))


# ---------------------------------------------------------------- front matter


def _facts(config: dict) -> dict:
    model, training = config.get("model", {}), config.get("training", {})
    return {"cell": model.get("cell"), "level": training.get("level"),  # every run records both
            "layers": model.get("num_layers"), "hidden": model.get("hidden_size"),
            "vocab": model.get("vocab_size"), "corpus": config.get("corpus", {}),
            "val": config.get("metrics", {}).get("val", {}), "exported": "export" in config}


def _front_matter(config: dict, repo_id: str, text: dict | None) -> str:
    f = _facts(config)
    tags = ["scriptrnn", f["cell"], f"{f['level']}-level", "recurrent", "text-generation"]
    if f["exported"]:
        tags.append("onnx")
    lines = ["library_name: scriptrnn", "pipeline_tag: text-generation", "tags:", *(f"- {t}" for t in tags)]
    lines += ["language:", "- en"] if f["corpus"].get("name") == "shakespeare" else \
        ["# language: [en]  (the corpus's language: scriptrnn does not know it)"]
    lines.append("# license: choose one (https://huggingface.co/docs/hub/repositories-licenses)")
    metrics = _metrics(f["val"], f["level"], text)
    if metrics:
        lines += ["model-index:", f"- name: {json.dumps(repo_id)}", "  results:", "  - task:",
                  "      type: text-generation", "      name: Text generation", "    dataset:",
                  f"      name: {json.dumps(str(f['corpus'].get('name', 'corpus')) + ' (held-out end)')}",
                  f"      type: {json.dumps(str(f['corpus'].get('name', 'corpus')))}", "    metrics:"]
        for kind, name, value in metrics:
            lines += [f"    - type: {kind}", f"      name: {json.dumps(name)}", f"      value: {value}"]
    return "\n".join(lines) + "\n"


def _metrics(val: dict, level: str, text: dict | None) -> list[tuple[str, str, float]]:
    found = []
    if _number(val.get("loss")):
        found.append(("loss", f"held-out loss (nats/{level})", round(val["loss"], 4)))
    if _number(val.get("bits_per_char")):
        found.append(("bits_per_character", "bits per character", round(val["bits_per_char"], 4)))
    if _number(val.get("perplexity")):
        found.append(("perplexity", f"perplexity (per {level})", round(val["perplexity"], 3)))
    for key, name in TEXT_FIGURES.items():
        if text and _number(text.get(key)):
            found.append((f"text_{key}", f"samples: {name}", round(text[key], 4)))
    return found


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------- body


def _body(config: dict, repo_id: str, sample: str | None, text: dict | None) -> str:
    f = _facts(config)
    name = repo_id.rpartition("/")[2] if repo_id != PLACEHOLDER else f"scriptrnn {f['corpus'].get('name', '')} model"
    parts = [f"# {name}\n",
             f"A {f['level']}-level {f['cell'].upper()} language model ({f['layers']} layers x {f['hidden']} units, "
             f"vocabulary {f['vocab']:,}) trained with [scriptrnn](https://pypi.org/project/scriptrnn/) on "
             f"{f['corpus'].get('name', 'a corpus')}. It writes text in the corpus's layout, a script's "
             "`NAME: line` speeches included.\n",
             _use(repo_id, f["exported"]), _training(config, f), _results(f, text)]
    if sample:
        fence = "`" * max(3, _longest_run(sample, "`") + 1)
        parts.append(f"## A sample it wrote\n\nAt temperature 0.5, from the run's own samples:\n\n"
                     f"{fence}text\n{sample.strip(chr(10))}\n{fence}\n")
    return "\n".join(parts)


def _use(repo_id: str, exported: bool) -> str:
    extra = "runtime" if exported else "train"
    return (f"## Use\n\n```bash\npip install 'scriptrnn[{extra},hub]'\nscriptrnn generate {PREFIX}{repo_id}\n```\n\n"
            f"```python\nimport scriptrnn\nmodel = scriptrnn.load(\"{PREFIX}{repo_id}\")\n"
            "print(model.generate(\"\", max_new_tokens=400))\n```\n\n"
            "The repository holds config.json, tokenizer.json and the weights "
            f"({'model.onnx, run by onnxruntime' if exported else 'model.safetensors'}); nothing in it runs code "
            "or is unpickled when it loads.\n")


def _training(config: dict, f: dict) -> str:
    corpus, metrics = f["corpus"], config.get("metrics", {})
    lines = ["## How it was trained\n"]
    if config.get("command"):
        lines.append(f"- Command: `{config['command']}`")
    size = f"{corpus['characters']:,} characters" if isinstance(corpus.get("characters"), int) else "size unknown"
    lines.append(f"- Corpus: {corpus.get('name', 'unknown')}, {size}; SHA-256 of its text "
                 f"`{corpus.get('sha256', 'not recorded')}` (the text itself is not shared)")
    if config.get("machine"):
        lines.append(f"- Machine: {config['machine']}")
    if _number(metrics.get("elapsed_s")):
        lines.append(f"- Training: {metrics.get('steps', '?'):,} steps in {metrics['elapsed_s'] / 60:.1f} minutes; "
                     f"{metrics.get('stopped_because', '')}")
    if config.get("parent"):
        lines.append("- Fine-tuned from another model (config.json's `parent` says which)")
    return "\n".join(lines) + "\n"


def _results(f: dict, text: dict | None) -> str:
    metrics = _metrics(f["val"], f["level"], text)
    if not metrics:
        return "## Results\n\nNot measured yet: the run has not finished.\n"
    rows = "\n".join(f"| {name} | {value} |" for _, name, value in metrics)
    scored = f["val"].get("tokens")
    where = f" ({scored:,} tokens)" if isinstance(scored, int) else ""
    return (f"## Results\n\nScored on every token of the corpus's held-out end{where}, which training never "
            "reads. The validation loss shown while training is measured on a sample of that end, so it "
            "differs a little.\n\n| figure | value |\n|---|---|\n" + rows + "\n")


def _longest_run(text: str, char: str) -> int:
    best = run = 0
    for c in text:
        run = run + 1 if c == char else 0
        best = max(best, run)
    return best
