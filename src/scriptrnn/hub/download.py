"""``hf:OWNER/NAME[@revision]`` -> a directory in the Hugging Face Hub library's cache.

The loader calls ``resolve`` before anything else, so a Hub model goes through the same
checks as a local directory (safetensors or ONNX only, bounded JSON, regular files). Only
the files loading needs are fetched (``SHARED_FILES``): a pickle or anything else a repository
holds is never downloaded. The library's own cache and settings apply: ``HF_HUB_OFFLINE=1``
and a filled cache load without the network, ``HF_HOME``/``HF_HUB_CACHE`` move the cache,
and a token (``HF_TOKEN``, ``hf auth login``) reaches private repositories.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ScriptRNNError
from ..extras import require
from ..model.directory import MODEL_FILE, WEIGHTS_FILE
from ..files import CONFIG_FILE, TOKENIZER_FILE

PREFIX = "hf:"
CARD_FILE = "README.md"
# What generating needs from a run (weights) or an export (graph), and the card that says what it is.
SHARED_FILES = (CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, MODEL_FILE, CARD_FILE)
# The Hub's own rule for repository ids: a namespace and a name of letters, digits, "-", "_", ".".
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")


def is_reference(model) -> bool:
    """True for a model argument that names a Hub repository (``hf:OWNER/NAME[@revision]``)."""
    return model is not None and str(model).startswith(PREFIX)


def parse_reference(text: str) -> tuple[str, str | None]:
    """``hf:OWNER/NAME[@revision]`` -> (repo id, revision or None), checked, in one line if bad."""
    body = str(text)[len(PREFIX):]
    repo_id, _, revision = body.partition("@")
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id or (_ and not revision):
        raise ScriptRNNError(f"{text!r} is not a Hub model: write hf:OWNER/NAME, or hf:OWNER/NAME@REVISION "
                             "(a branch, tag or commit)")
    return repo_id, revision or None


def resolve(model) -> Path:
    """The directory a model argument names: a Hub reference downloaded (or found in the cache), else the path."""
    if not is_reference(model):
        return Path(model)
    repo_id, revision = parse_reference(str(model))
    require("a model from the Hub (hf:OWNER/NAME)", "huggingface_hub")
    folder = Path(_snapshot(repo_id, revision, str(model)))
    check_snapshot(folder, str(model))
    return folder


def _snapshot(repo_id: str, revision: str | None, shown: str) -> str:
    import huggingface_hub
    from huggingface_hub import errors

    try:
        return huggingface_hub.snapshot_download(repo_id, revision=revision, allow_patterns=list(SHARED_FILES),
                                                 library_name="scriptrnn")
    except errors.RepositoryNotFoundError:
        raise ScriptRNNError(f"{shown}: no such model on the Hub (or it is private: log in with `hf auth login` "
                             "or set HF_TOKEN)") from None
    except errors.RevisionNotFoundError:
        raise ScriptRNNError(f"{shown}: the repository has no revision {revision!r}") from None
    except errors.LocalEntryNotFoundError:
        raise ScriptRNNError(f"{shown} is not in the Hub cache and the Hub cannot be reached (offline: "
                             "HF_HUB_OFFLINE is set, or no network); download it once while online") from None
    except hub_errors() as e:
        raise ScriptRNNError(f"{shown}: cannot download ({first_line(e)})") from None


def check_snapshot(folder: Path, shown: str) -> None:
    """Every file of a downloaded folder must lie inside its repository's cache folder.

    The Hub library stores files as links from snapshots/<commit>/ to blobs/; a cache someone
    else filled could hold a link anywhere (a key file, /dev/zero). The loader's own checks
    (regular files, sizes, no pickles) then run on what is left, as for any local directory.
    """
    repo_root = folder.resolve().parents[1]  # models--OWNER--NAME/ above snapshots/<commit>/
    for path in sorted(folder.rglob("*")):
        target = path.resolve()
        if repo_root not in target.parents:
            raise ScriptRNNError(f"{shown}: {path.name} in the downloaded folder {folder} leads outside the Hub "
                                 f"cache (to {target}); refused")


def hub_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a Hub call raises for a refusal or a network failure (each is one line to the user)."""
    from huggingface_hub import errors

    found: list[type[BaseException]] = [errors.HfHubHTTPError, OSError, ValueError]
    for name in ("LocalTokenNotFoundError", "OfflineModeIsEnabled"):
        if hasattr(errors, name):
            found.append(getattr(errors, name))
    try:
        import httpx  # the library's HTTP client from 1.0 on (requests' errors are OSErrors)

        found.append(httpx.HTTPError)
    except ModuleNotFoundError:
        pass
    return tuple(found)


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]
