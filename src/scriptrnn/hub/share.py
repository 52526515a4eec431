"""What a shared model holds, copied by hand (``scriptrnn share``) or uploaded (``scriptrnn push``).

Generating needs config.json, tokenizer.json and the weights (model.safetensors for a run,
model.onnx for an export); the card says what they are. Nothing else goes: not
resume.safetensors (the optimizer's state, three times the weights), not the token cache,
the metrics or the samples, and never the corpus. The directory is checked the way the
loader checks it before anything is copied or sent.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..errors import ScriptRNNError
from ..extras import require
from ..model.directory import MODEL_FILE, WEIGHTS_FILE, is_exported, read_config, read_tokenizer_dict
from ..files import CONFIG_FILE, MAX_WEIGHTS_BYTES, TOKENIZER_FILE, check_regular
from .card import PLACEHOLDER, card_text, is_card, named_card
from .download import CARD_FILE, first_line, hub_errors, parse_reference


def shared_files(directory: Path) -> list[Path]:
    """The files of ``directory`` a shared copy holds (the card apart), each checked as the loader would."""
    directory = Path(directory)
    read_config(directory)  # format, version, sections: a run or an export, else one line
    read_tokenizer_dict(directory)
    weights = MODEL_FILE if is_exported(directory) else WEIGHTS_FILE
    what = "the ONNX graph" if weights == MODEL_FILE else "the weights (written at the run's first check)"
    check_regular(directory / weights, what, MAX_WEIGHTS_BYTES)
    return [directory / CONFIG_FILE, directory / TOKENIZER_FILE, directory / weights]


def share(directory: Path, out: Path, *, repo_id: str = PLACEHOLDER, overwrite: bool = False) -> list[str]:
    """Copy what a shared model needs from ``directory`` into ``out``, with its card; the names copied."""
    directory, out = Path(directory), Path(out)
    files = shared_files(directory)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ScriptRNNError(f"--out {out} exists and is not an empty folder; pass --overwrite to replace its files")
    if out.resolve() == directory.resolve():
        raise ScriptRNNError(f"--out {out} is the model directory itself; give another folder")
    out.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copyfile(path, out / path.name)  # follows links: the copy holds the files themselves
    (out / CARD_FILE).write_text(_card(directory, repo_id), encoding="utf-8")
    return [p.name for p in files] + [CARD_FILE]


def _card(directory: Path, repo_id: str) -> str:
    """The directory's own card (it has the run's sample) named for the repository, else a new one."""
    path = directory / CARD_FILE
    if is_card(path):
        return named_card(path.read_text(encoding="utf-8"), repo_id)
    return card_text(read_config(directory).to_dict(), repo_id=repo_id)


def push(directory: Path, repo: str, *, private: bool = False, revision: str | None = None) -> str:
    """Upload what ``directory`` shares to the Hub repository ``repo`` (``OWNER/NAME``); the commit's URL.

    The token comes from where the Hub library looks (``HF_TOKEN``, ``hf auth login``); the
    repository is created when it does not exist (``private`` then decides who sees it).
    """
    require("`scriptrnn push`", "huggingface_hub")
    repo_id, _ = parse_reference(f"hf:{repo}")
    from huggingface_hub import HfApi

    api = HfApi(library_name="scriptrnn")
    with tempfile.TemporaryDirectory(prefix="scriptrnn-push-") as staging:
        names = share(directory, Path(staging) / "model", repo_id=repo_id)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            commit = api.upload_folder(repo_id=repo_id, folder_path=Path(staging) / "model", revision=revision,
                                       commit_message=f"scriptrnn push: {', '.join(names)}")
        except hub_errors() as e:
            raise ScriptRNNError(f"push to {repo_id} failed: {first_line(e)}") from None
    return str(getattr(commit, "commit_url", commit))
