"""Where a run's text comes from, as typed values: what was asked for, and what it resolved to.

``CorpusRequest`` is ``train()``'s and ``evaluate()``'s corpus arguments as one value;
``CorpusSource`` is what it resolves to (absolute paths, the styles), the form saved in a
run's config.json under ``corpus.source`` so that a resume reads the very same text.
``TextFormat`` (corpus.py, beside the reader) is how files are read. Loading the text from any of
them happens here too, so the readers (corpus.py, shakespeare.py, styles.py) never need to
import each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable

from ..errors import ScriptRNNError
from ..paths import real_path
from .corpus import Corpus, PathLike, TextFormat, as_path_list, read_corpus
from .shakespeare import BUILTIN_NAME, shakespeare_corpus
from .stream import StreamedCorpus, streamed_files
from .styles import StyledCorpus, StylePart, StyleSource, free_tags, scene_chunks, style_sources, tagged

BUILTIN_CORPORA = (BUILTIN_NAME,)


@dataclass(frozen=True)
class CorpusRequest:
    """What a caller asked to read, before any file is looked at."""

    data: object = None  # files, folders, {style: paths}, a TOML manifest; None: the built-in corpus
    corpus: str = BUILTIN_NAME  # the built-in corpus used without data
    genres: tuple[str, ...] = ()  # built-in plays only; none: all of them
    styles: str | None = None  # "genre" or "file": one style per genre or per file (styles.py)
    text_format: TextFormat = field(default_factory=TextFormat)

    def resolve(self) -> CorpusSource:
        """The source this request names: paths made absolute, styles worked out (one-line errors)."""
        styles = style_sources(self.data, by=self.styles, genres=list(self.genres) or None)
        paths = [] if styles else as_path_list(self.data)
        return CorpusSource(paths=tuple(str(real_path(p)) for p in paths), corpus=self.corpus,
                            genres=() if styles else tuple(self.genres), styles=tuple(styles or ()),
                            text_format=self.text_format)


@dataclass(frozen=True)
class CorpusSource:
    """A run's resolved corpus: what it trains on and what a resume reads again."""

    paths: tuple[str, ...] = ()  # absolute; none means the built-in corpus
    corpus: str = CorpusRequest.corpus
    genres: tuple[str, ...] = ()
    styles: tuple[StyleSource, ...] = ()  # a styled run's sources (then paths and genres are empty)
    text_format: TextFormat = field(default_factory=TextFormat)

    def load(self) -> Corpus:
        if self.styles:
            return load_styled_corpus(list(self.styles), self.text_format)
        return load_corpus(list(self.paths) or None, corpus=self.corpus, genres=list(self.genres) or None,
                           text_format=self.text_format)

    def streamed(self) -> StreamedCorpus | None:
        """The text as ``load`` reads it, as a stream of pieces (stream.py); None for styles, which load whole."""
        if self.styles:
            return None
        return stream_corpus(list(self.paths) or None, corpus=self.corpus, genres=list(self.genres) or None,
                             text_format=self.text_format)

    def describe(self) -> str:
        if self.styles:
            return "styles " + ", ".join(s.style for s in self.styles)
        return ", ".join(self.paths) or self.corpus

    def to_dict(self) -> dict:
        """config.json's ``corpus.source`` (the layout runs have always saved)."""
        f = self.text_format
        data = {"paths": list(self.paths), "corpus": self.corpus, "genres": list(self.genres), "encoding": f.encoding,
                "speaker_column": f.speaker_column, "dialogue_column": f.dialogue_column}
        if self.styles:
            data["styles"] = [s.to_dict() for s in self.styles]
        return data

    @classmethod
    def from_dict(cls, data) -> CorpusSource | None:
        """A saved source, checked (config.json may be edited); None when it does not say what was read."""
        lists, names = ("paths", "genres"), ("corpus", "encoding", "speaker_column", "dialogue_column")
        if not isinstance(data, dict) or not all(
                isinstance(data.get(k), list) and all(isinstance(v, str) for v in data[k]) for k in lists) or \
                not all(isinstance(data.get(k), str) for k in names):
            return None
        styles = tuple(StyleSource.from_dict(s) for s in data.get("styles") or [])
        return cls(tuple(data["paths"]), data["corpus"], tuple(data["genres"]), styles,
                   TextFormat(data["encoding"], data["speaker_column"], data["dialogue_column"]))


def load_corpus(paths: PathLike | Iterable[PathLike] | None = None, *, corpus: str = CorpusRequest.corpus,
                genres: str | Iterable[str] | None = None, text_format: TextFormat | None = None) -> Corpus:
    """The user's files if any are given, otherwise the named built-in corpus."""
    if path_list := _user_files(paths, genres):
        return read_corpus(path_list, **asdict(text_format or TextFormat()))
    if corpus not in BUILTIN_CORPORA:
        known = ", ".join(BUILTIN_CORPORA)
        raise ScriptRNNError(f"unknown built-in corpus {corpus!r}; known corpora: {known}")
    return shakespeare_corpus(genres)


def stream_corpus(paths: PathLike | Iterable[PathLike] | None = None, *, corpus: str = CorpusRequest.corpus,
                  genres: str | Iterable[str] | None = None, text_format: TextFormat | None = None) -> StreamedCorpus:
    """load_corpus's text as a stream of pieces (stream.py): files stream, the built-in plays (~5 MB) are one."""
    if path_list := _user_files(paths, genres):
        return streamed_files(path_list, **asdict(text_format or TextFormat()))
    builtin = load_corpus(None, corpus=corpus, genres=genres)
    return StreamedCorpus(builtin.name, lambda: iter([builtin.text]))


def _user_files(paths, genres) -> list:
    """The files and folders given (genres choose built-in plays, so they come without them)."""
    path_list = as_path_list(paths)
    if path_list:
        _no_genres(genres)
    return path_list


def _no_genres(genres) -> None:
    if genres:
        raise ScriptRNNError("genres only select plays of the built-in corpus; drop the genres or the paths")


def load_styled_corpus(sources: list[StyleSource], text_format: TextFormat | None = None) -> StyledCorpus:
    """Each style's text cut into scene chunks, every chunk led by the style's tag (styles.py)."""
    texts = [load_corpus(list(s.paths) or None, corpus=s.corpus, genres=list(s.genres) or None,
                         text_format=text_format).text for s in sources]
    tags = free_tags(len(sources), texts)
    parts = tuple(StylePart(s.style, tag, tuple(scene_chunks(text))) for s, tag, text in zip(sources, tags, texts))
    text = "\n".join(tagged(p.tag, c) for p in parts for c in p.chunks)
    return StyledCorpus(name="+".join(s.style for s in sources), text=text, parts=parts)
