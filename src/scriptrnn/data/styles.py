"""One model, many voices: corpora tagged with a style (a show, a genre), and the tag that names each.

Each style's text is cut into chunks at scene breaks (blank lines), and every chunk starts
with the style's tag: one reserved character from Unicode's Private Use Area on a line of
its own. The recurrent state carried from the tag conditions everything after it, so
``generate --style comedies`` only has to run the tag first. A start token rather than a
learned style embedding keeps the model's step interface (ids + state -> scores) as it is,
which exported and batched models rely on; and one reserved character is one token at both
levels (a char-level vocabulary could not hold ``<style=comedies>`` as a single symbol, and
at word level the character stands alone between line breaks, so it is one word).

Chunks of all styles are interleaved in a seeded random order (each style's own order kept),
so the training stream switches between styles all along and only the tag says which comes
next; each style holds out its own end for validation, so the held-out loss per style is
measured on text no run trained on.
"""

from __future__ import annotations

import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .corpus import Corpus, PathLike, as_path_list, find_speakers
from .shakespeare import BUILTIN_NAME
from ..errors import ScriptRNNError
from ..paths import real_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

MAX_STYLES = 256
_TAG_FIRST, _TAG_LAST = 0xE000, 0xF8FF  # Unicode's Private Use Area: never a real character
STYLE_NAME = re.compile(r"[\w-]{1,40}")  # \w is Unicode-aware: "komödie" is a name too
_PATH_AND_STYLE = re.compile(r"(.+):([\w-]{1,40})")
# Chunk sizes in characters: big enough that one tag per chunk costs nothing, small enough
# that a training stream starting mid-corpus (with no state) meets a tag soon.
MIN_CHUNK_CHARS = 1_000
MAX_CHUNK_CHARS = 8_000
BY_CHOICES = ("genre", "file")
_MANIFEST_KEYS = {"paths", "corpus", "genres"}


@dataclass(frozen=True)
class StyleSource:
    """Where one style's text comes from: files and folders, or the built-in corpus."""

    style: str
    paths: tuple[str, ...] = ()  # resolved paths; none means the built-in corpus below
    corpus: str = BUILTIN_NAME
    genres: tuple[str, ...] = ()  # built-in only; none means all of it

    def to_dict(self) -> dict:
        return {"style": self.style, "paths": list(self.paths), "corpus": self.corpus, "genres": list(self.genres)}

    @classmethod
    def from_dict(cls, data) -> "StyleSource":
        """From a run's config.json (checked: the file may have been edited)."""
        ok = isinstance(data, dict) and isinstance(data.get("style"), str) and isinstance(data.get("corpus"), str)
        lists = [data.get(k) for k in ("paths", "genres")] if ok else []
        if not ok or not all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in lists):
            raise ScriptRNNError(f"config.json: a style source {data!r} is not a style with paths or genres")
        return cls(data["style"], tuple(data["paths"]), data["corpus"], tuple(data["genres"]))


@dataclass(frozen=True)
class StylePart:
    name: str
    tag: str  # the reserved character that starts each of this style's chunks
    chunks: tuple[str, ...] = field(repr=False)  # untagged; each starts a line and ends with '\n'


@dataclass(frozen=True)
class StyledSplit:
    train: str  # tagged chunks of every style, interleaved
    val: str  # the held-out ends of every style, interleaved the same way
    val_by_style: dict[str, str]  # each style's held-out end alone


@dataclass(frozen=True)
class StyledCorpus(Corpus):
    """A Corpus whose text is every style's tagged chunks; ``split`` gives training and held-out text."""

    parts: tuple[StylePart, ...] = ()

    @property
    def styles(self) -> dict[str, str]:
        return {p.name: p.tag for p in self.parts}

    def split(self, val_fraction: float) -> StyledSplit:
        train, val = [], []
        for part in self.parts:
            head, tail = _split_chunks(part, val_fraction)
            train.append([tagged(part.tag, c) for c in head])
            val.append([tagged(part.tag, c) for c in tail])
        return StyledSplit("\n".join(interleave(train)), "\n".join(interleave(val)),
                           {p.name: "\n".join(v) for p, v in zip(self.parts, val)})


# --------------------------------------------------------------------------- sources


def style_sources(data, *, by: str | None = None, genres=None) -> list[StyleSource] | None:
    """The styles asked for, or None for an ordinary (untagged) run.

    ``data`` may be ``{"seinfeld": "seinfeld.txt", ...}``, a TOML manifest, or paths written
    ``PATH:STYLE``; ``by="genre"`` adds one style per genre of the built-in plays (all, or
    ``genres``) and ``by="file"`` names each path's style after its file.
    """
    if by is not None and by not in BY_CHOICES:
        raise ScriptRNNError(f"--styles must be one of {', '.join(BY_CHOICES)}, got {by!r}")
    items = [] if isinstance(data, dict) else as_path_list(data)
    if isinstance(data, dict):
        sources = [_source(style, as_path_list(paths)) for style, paths in data.items()]
    elif len(items) == 1 and items[0].suffix.lower() == ".toml" and by != "file":
        sources = read_manifest(items[0])
    else:
        sources = _tagged_paths(items, name_by_file=by == "file")
    if by == "file" and not items:
        raise ScriptRNNError("--styles file names a style after each DATA file; give some files")
    if items and not sources and by == "genre":
        raise ScriptRNNError("to train files beside the genres give each a style: seinfeld.txt:seinfeld")
    if genres and sources and by != "genre":
        raise ScriptRNNError("--genre chooses the plays of --styles genre; with styled DATA add --styles genre "
                             "or drop --genre")
    if by == "genre":
        from .shakespeare import GENRES, _choose_genres

        sources += [StyleSource(g, genres=(g,)) for g in (_choose_genres(genres) or GENRES)]
    if not sources:
        return None
    return _checked(sources)


def _tagged_paths(items: list[Path], *, name_by_file: bool) -> list[StyleSource]:
    pairs = [_path_and_style(item) for item in items]
    if name_by_file:
        pairs = [(path, style or _style_from_file(path)) for path, style in pairs]
    if all(style is None for _, style in pairs):
        return []
    if any(style is None for _, style in pairs):
        raise ScriptRNNError("give every DATA a style (seinfeld.txt:seinfeld simpsons.txt:simpsons), or none")
    by_style: dict[str, list[Path]] = {}
    for path, style in pairs:
        by_style.setdefault(style, []).append(path)  # a.txt:x b.txt:x: one style, two files
    return [_source(style, paths) for style, paths in by_style.items()]


def _path_and_style(item: Path) -> tuple[Path, str | None]:
    """'seinfeld.txt:seinfeld' -> (seinfeld.txt, 'seinfeld'); a file really named so stays a path."""
    match = _PATH_AND_STYLE.fullmatch(str(item))
    if item.exists() or not match:
        return item, None
    return Path(match.group(1)), match.group(2)


def _style_from_file(path: Path) -> str:
    return re.sub(r"[^\w-]+", "_", path.stem if path.is_file() else real_path(path).name)[:40] or "style"


def _source(style, paths: list[Path]) -> StyleSource:
    if not paths:
        raise ScriptRNNError(f"style {style!r} has no files")
    return StyleSource(str(style), tuple(str(real_path(p)) for p in paths))


def _checked(sources: list[StyleSource]) -> list[StyleSource]:
    seen: set[str] = set()
    for source in sources:
        if not STYLE_NAME.fullmatch(source.style):
            raise ScriptRNNError(f"style name {source.style!r} must be 1 to 40 letters, digits, '_' or '-'")
        if source.style.lower() in seen:
            raise ScriptRNNError(f"style {source.style!r} is given twice; give each style its sources once")
        seen.add(source.style.lower())
    if len(sources) > MAX_STYLES:
        raise ScriptRNNError(f"{len(sources)} styles is more than the {MAX_STYLES} a model can hold")
    return sources


def read_manifest(path: PathLike) -> list[StyleSource]:
    """A TOML file with one ``[styles.NAME]`` table per style: ``paths`` (relative to the file),
    or ``corpus`` and ``genres`` for the built-in plays."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ScriptRNNError(f"cannot read the manifest {path}: {e.strerror or e}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ScriptRNNError(f"{path}: not valid TOML ({e})") from None
    styles = data.get("styles")
    if set(data) - {"styles"} or not isinstance(styles, dict) or not styles:
        raise ScriptRNNError(f'{path}: a manifest holds only [styles.NAME] tables, e.g. [styles.seinfeld] with '
                             'paths = ["seinfeld.txt"], or [styles.comedy] with genres = ["comedies"]')
    return [_manifest_entry(path, name, entry) for name, entry in styles.items()]


def _manifest_entry(path: Path, name: str, entry) -> StyleSource:
    where = f"{path}: [styles.{name}]"
    if not isinstance(entry, dict) or set(entry) - _MANIFEST_KEYS or not entry:
        raise ScriptRNNError(f"{where} takes {', '.join(sorted(_MANIFEST_KEYS))} (paths, or corpus and genres)")
    paths, genres = _string_list(entry.get("paths", []), where), _string_list(entry.get("genres", []), where)
    corpus = entry.get("corpus", StyleSource.corpus)
    if not isinstance(corpus, str) or (paths and ("corpus" in entry or genres)):
        raise ScriptRNNError(f"{where}: give paths, or a built-in corpus (and genres), not both")
    if paths:
        return _source(name, [path.parent / p for p in paths])
    return StyleSource(name, (), corpus, tuple(genres))


def _string_list(value, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ScriptRNNError(f"{where}: paths and genres are a string or a list of strings")
    return value


# --------------------------------------------------------------------------- the tagged text


def free_tags(count: int, texts: list[str]) -> list[str]:
    """``count`` private-use characters that no text uses (a corpus may hold a few, from icon fonts)."""
    used = set().union(*(set(re.findall("[\ue000-\uf8ff]", t)) for t in texts))
    free = (chr(c) for c in range(_TAG_FIRST, _TAG_LAST + 1) if chr(c) not in used)
    return [next(free) for _ in range(count)]


def tagged(tag: str, chunk: str) -> str:
    # The tag on a line of its own: at word level it is then a word by itself, and the
    # chunk's first line starts where lines start, as after any line break.
    return f"{tag}\n{chunk}"


def scene_chunks(text: str) -> list[str]:
    """The text cut at blank lines into chunks of at least MIN_CHUNK_CHARS (scenes, merged when
    short), and at line ends where a scene runs past MAX_CHUNK_CHARS."""
    chunks, current, size = [], [], 0
    for line in text.split("\n"):
        blank = not line.strip()
        if current and ((blank and size >= MIN_CHUNK_CHARS) or size >= MAX_CHUNK_CHARS):
            chunks.append(_chunk(current))
            current, size = [], 0
        if blank and not current:
            continue  # no chunk starts or ends with blank lines: the join puts one between
        current.append(line)
        size += len(line) + 1
    if any(line.strip() for line in current):
        chunks.append(_chunk(current))
    return chunks


def _chunk(lines: list[str]) -> str:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return "\n".join(lines) + "\n"


def _split_chunks(part: StylePart, fraction: float) -> tuple[list[str], list[str]]:
    """(training, held-out) chunks: the held-out end is ``fraction`` of the style's characters."""
    chunks = list(part.chunks)
    keep = sum(map(len, chunks)) - int(sum(map(len, chunks)) * fraction)
    done = 0
    for i, chunk in enumerate(chunks):
        if done + len(chunk) > keep:
            cut = _line_cut(chunk, keep - done, last=i == len(chunks) - 1)
            head, tail = chunk[:cut], chunk[cut:]
            train, val = chunks[:i] + ([head if head.endswith("\n") else head + "\n"] if head else []), \
                [tail, *chunks[i + 1:]]
            break
        done += len(chunk)
    else:
        train, val = chunks, []
    if not train or not val or not any(c.strip() for c in val):
        raise ScriptRNNError(f"style {part.name!r} is too small to hold out {fraction:.0%} for validation; "
                             "give it more text")
    return train, val


def _line_cut(chunk: str, at: int, *, last: bool) -> int:
    """A line start near ``at``, so neither side begins mid-line unless the chunk is one line."""
    after = chunk.find("\n", at) + 1
    if 0 < after < len(chunk):
        return after
    before = chunk.rfind("\n", 0, at) + 1
    if before > 0 or not last:
        return before
    return at


def interleave(parts: list[list[str]], seed: int = 0) -> list[str]:
    """Chunks of all styles in a random order that keeps each style's own order.

    Which style comes next is then anyone's guess but the tag's, so the model has to read the
    tag; a fixed alternation would let it guess from the chunk before, which a generation that
    starts from nothing does not have. Seeded, so a run's text is the same every time.
    """
    rng = random.Random(seed)
    left, taken, out = [len(chunks) for chunks in parts], [0] * len(parts), []
    while any(left):
        # Weighted by what is left: every interleaving equally likely, each style spread evenly.
        s = rng.choices(range(len(parts)), weights=left)[0]
        out.append(parts[s][taken[s]])
        taken[s], left[s] = taken[s] + 1, left[s] - 1
    return out


def style_facts(corpus: StyledCorpus, fold_case: bool, top: int = 50) -> list[dict]:
    """What config.json records per style: its tag, size and most frequent speakers."""
    facts = []
    for part in corpus.parts:
        text = "".join(part.chunks)
        speakers = [s.lower() if fold_case else s for s, _ in find_speakers(text).most_common(top)]
        facts.append({"name": part.name, "tag": part.tag, "characters": len(text), "speakers": speakers})
    return facts


# --------------------------------------------------------------------------- a trained model's styles


def model_styles(entries, tokenizer) -> dict[str, str]:
    """Style name -> tag of a run (``entries``: its record's ``corpus.styles``), checked against its vocabulary."""
    styles: dict[str, str] = {}
    for entry in entries:
        if len(entry.tag) != 1 or tokenizer.token_id(entry.tag) is None or entry.tag in styles.values():
            raise ScriptRNNError(f"config.json: style {entry.name!r} needs a tag of the model's vocabulary, "
                                 f"got {entry.tag!r}")
        styles[entry.name] = entry.tag
    return styles


def style_tag(styles: dict[str, str], name: str) -> str:
    """The tag of style ``name`` (any case), or a one-line error that lists the model's styles."""
    return styles[style_name(styles, name)]


def style_speakers(entries, name: str) -> list[str]:
    """The speakers a run's record (``entries``: its ``corpus.styles``) gives style ``name``, most frequent first."""
    return next((list(entry.speakers) for entry in entries if entry.name == name), [])


def style_name(styles: dict[str, str], name: str) -> str:
    """The model's own spelling of style ``name`` (any case), or a one-line error that lists them."""
    if not styles:
        raise ScriptRNNError("this model was trained without styles, so --style has nothing to choose; train with "
                             "DATA:STYLE arguments, a manifest or --styles genre")
    by_lower = {s.lower(): s for s in styles}
    if name.strip().lower() not in by_lower:
        raise ScriptRNNError(f"unknown style {name!r}; this model's styles: {', '.join(styles)}")
    return by_lower[name.strip().lower()]
