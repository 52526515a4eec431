"""Fountain screenplays in and out: the plain-text format screenwriters' tools read and write.

In: a ``.fountain`` file becomes the same one-line-per-paragraph layout as every other
corpus here, so speakers, primes, ``--cast`` and the line and scene counts work on it
unchanged:

    [INT. JERRY'S APARTMENT - DAY]           scene heading (forced ones keep their '.')
    [Jerry stares out of the window.]        action, its lines joined
    JERRY (V.O.): (sighs) What is the deal?  character cue, parentheticals and dialogue
    [CUT TO:]                                transition (forced ones keep their '>')

A blank line comes before each scene heading and nowhere else, as in the built-in plays.
Why this layout rather than the Fountain text itself: a speech in Fountain is several
lines (cue, parentheticals, dialogue) told apart by upper case and blank lines, and word
level folds case; one line per paragraph keeps each element's kind in its own markers
([...], NAME:, (...)), survives lower-casing, and lets a model learn one layout across
screenplays, TV transcripts and the plays. What it drops: the title page, notes,
boneyard, sections, synopses, page breaks, dual-dialogue pairing and line breaks inside
a paragraph (none of them is the script's text).

Out: ``to_fountain`` writes any text in that layout (a model's output, or the plays) as
Fountain, forcing an element's kind with Fountain's own markers (!, @, ., >) wherever the
plain text would be read as something else. A TV transcript's scene line (``[setting: monk's
cafe]``, also ``location:`` and ``scene:``) becomes a forced scene heading, ``.MONK'S CAFE``
(forced: the transcript does not say INT. or EXT.), any description after it an action line;
``render`` turns Fountain into a formatted
screenplay (PDF or HTML) through screenplain.
"""

from __future__ import annotations

import io
import re

from ..errors import ScriptRNNError

# The rules below follow the Fountain spec (fountain.io/syntax) as screenplain reads it,
# so that what we read is what screenplain renders.
_BONEYARD = re.compile(r"/\*.*?\*/", re.DOTALL)
_NOTE = re.compile(r"\[\[.*?\]\]", re.DOTALL)
_SLUG = re.compile(r"(INT|EXT|EST|INT\.?/EXT\.?|I/E)[ .]", re.IGNORECASE)
_FORCED_SLUG = re.compile(r"\.(?=[^.])")
_TITLE_KEY = re.compile(r"[^:]+:")
_CENTERED = re.compile(r"\s*>.*<\s*$")
_SECTION = re.compile(r"#{1,6}")
_PAGE_BREAK = re.compile(r"={3,}")
_DUAL_MARK = re.compile(r"\s*\^$")
_PARENTHETICAL = re.compile(r"\([^()]*\)")
# Our own layout: a speech line, and the headings of the built-in plays.
_SPEECH = re.compile(r"([^\s:\[][^:\n]{0,40}?)[ \t]*:(?:[ \t]+(.*))?$")
_PLAY_HEADING = re.compile(r"(ACT|SCENE)\s+[IVXLC]+\b|(PROLOGUE|EPILOGUE|INDUCTION)\b", re.IGNORECASE)
_SENTENCE_START = re.compile(r"(^|[.!?]\s+)([a-z])")
# TV transcripts' scene lines, "[setting: monk's cafe. george is there]", and where the place ends:
# a full stop after a word of three letters or more ("j. peterman's office" is one place), not "mrs.".
_SETTING = re.compile(r"(?:setting|location|scene)\s*:\s*(\S.*)", re.IGNORECASE)
_PLACE_END = re.compile(r"(?<=[^\W\d_]{3})(?<!mrs)\.(?:\s+|$)", re.IGNORECASE)

FORMATS = ("text", "fountain", "html", "pdf")


# --------------------------------------------------------------------------- reading


def fountain_to_dialogue(source: str) -> str:
    """A Fountain screenplay as our one-line-per-paragraph layout (see the module docstring)."""
    source = _NOTE.sub("", _BONEYARD.sub("", source))
    lines = [line.expandtabs(4) for line in source.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    paragraphs = _paragraphs(lines)
    if paragraphs and lines[0].strip() and _is_title_page(paragraphs[0]):
        paragraphs = paragraphs[1:]
    out: list[str] = []
    for paragraph in paragraphs:
        for kind, text in _classify(paragraph):
            if kind == "heading" and out:
                out.append("")  # scenes apart, as in the plays
            out.append(text)
    return "\n".join(out) + "\n" if out else ""


def _paragraphs(lines: list[str]) -> list[list[str]]:
    """Runs of non-blank lines (screenplain's rule: only '' and ' ' are blank; two spaces are not)."""
    paragraphs, current = [], []
    for line in [*lines, ""]:
        if line not in ("", " "):
            current.append(line)
            continue
        if any(part.strip() for part in current):
            paragraphs.append(current)
        current = []
    return paragraphs


def _is_title_page(paragraph: list[str]) -> bool:
    """Key: value lines (values may continue on indented lines) at the very top."""
    return bool(_TITLE_KEY.match(paragraph[0])) and all(
        _TITLE_KEY.match(line) or line.startswith(("   ", "\t")) for line in paragraph)


def _classify(lines: list[str]) -> list[tuple[str, str]]:
    """One Fountain paragraph as (kind, line-in-our-layout) pairs, in screenplain's order of rules."""
    first, single = lines[0], len(lines) == 1
    if first.startswith("!"):
        return [("action", _action_line(_join([first[1:], *lines[1:]])))]
    if (single and _PAGE_BREAK.fullmatch(first.strip())) or first.startswith("=") or _SECTION.match(first):
        return []  # page breaks, synopses and sections are outline, not script
    if single and (_FORCED_SLUG.match(first) or _SLUG.match(first)):
        return [("heading", _bracket(first.strip()))]
    if all(_CENTERED.match(line) for line in lines):
        return [("centered", _bracket(_join(lines)))]
    speech = _speech(lines)
    if speech:
        return [("speech", speech)]
    if single and _is_transition(first.strip()):
        return [("transition", _bracket(first.strip()))]
    return [("action", _action_line(_join(lines)))]


def _speech(lines: list[str]) -> str | None:
    """'NAME (V.O.): (beat) words' for a character cue and its lines, None if not dialogue."""
    cue = lines[0]
    if len(lines) < 2 or cue.endswith("  "):
        return None
    if cue.startswith("@") and len(cue) >= 2:
        cue = cue[1:]
    elif not cue.split("(", 1)[0].isupper():
        return None
    name = " ".join(_DUAL_MARK.sub("", cue).replace(":", " ").split())
    words = _join(lines[1:])
    return f"{name}: {words}" if words else f"{name}:"


def _is_transition(line: str) -> bool:
    return line.startswith(">") or (line.isupper() and line.endswith("TO:"))


def _join(lines: list[str]) -> str:
    return " ".join(" ".join(line.split()) for line in lines if line.strip())


def _action_line(text: str) -> str:
    """[action], keeping Fountain's '!' where our layout would take the text for another element."""
    return _bracket("!" + text if _direction_kind(text) != "action" else text)


def _bracket(text: str) -> str:
    # Our layout's [direction] has one pair of brackets; inner ones would end it early.
    return "[" + text.replace("[", "(").replace("]", ")") + "]"


# --------------------------------------------------------------------------- writing


def to_fountain(text: str, *, sentence_case: bool = False) -> str:
    """Text in our layout (speeches, [directions], plain lines) as a Fountain screenplay.

    ``sentence_case`` puts capitals back at sentence starts, for models that write in lower
    case (word level folds case by default); cues, headings and transitions are always
    upper case, as Fountain wants them.
    """
    blocks = [_block(line.strip(), sentence_case) for line in text.split("\n") if line.strip()]
    blocks = [b for b in blocks if b]
    # A leading blank line tells Fountain readers there is no title page, so that a first
    # paragraph holding a colon ("INT. HOUSE: NIGHT") is not taken for one.
    return "\n" + "\n\n".join(blocks) + "\n" if blocks else ""


def _block(line: str, sentence_case: bool) -> str:
    if line.startswith("[") and line.endswith("]"):
        return _direction(line[1:-1].strip(), sentence_case)
    speech = _SPEECH.match(line)
    if speech:
        return _dialogue(speech.group(1), speech.group(2) or "", sentence_case)
    return _action(line, sentence_case)


def _direction_kind(inner: str) -> str:
    """What a [bracketed] line of our layout stands for; the reader and the writer share this."""
    if inner.startswith("!"):
        return "forced action"
    if _SLUG.match(inner) or _FORCED_SLUG.match(inner):
        return "heading"
    if _PLAY_HEADING.match(inner):
        return "play heading"  # the plays' [SCENE II. A room.]
    if _SETTING.match(inner):
        return "setting"  # a TV transcript's [setting: monk's cafe]
    if _CENTERED.match(inner) or inner.startswith(">"):
        return "marked"  # centered text or a forced transition: Fountain's own markers kept
    if len(inner.split()) <= 4 and inner.upper().endswith("TO:"):
        return "transition"  # CUT TO:, also from a lower-case model
    return "action"


def _direction(inner: str, sentence_case: bool) -> str:
    kind = _direction_kind(inner)
    if not inner:
        return ""
    if kind in ("heading", "transition"):
        return inner.upper()
    if kind == "play heading":
        return "." + inner.upper()  # a forced scene heading
    if kind == "setting":
        return _setting(_SETTING.match(inner).group(1), sentence_case)
    if kind == "marked":
        return inner
    if kind == "forced action":
        return "!" + _sentences(inner[1:], sentence_case)
    return _action(inner, sentence_case)


def _setting(place: str, sentence_case: bool) -> str:
    """"monk's cafe. george is there" -> a forced scene heading, .MONK'S CAFE, then the rest as action."""
    end = _PLACE_END.search(place)
    heading, rest = (place[:end.start()], place[end.end():]) if end else (place, "")
    heading = "." + " ".join(heading.split()).upper()
    return heading + "\n\n" + _action(rest.strip(), sentence_case) if rest.strip() else heading


def _dialogue(name: str, words: str, sentence_case: bool) -> str:
    name = " ".join(name.split())
    # A cue is upper case; a mixed-case name keeps its spelling behind Fountain's '@'.
    if name in (name.lower(), name.upper()) and name.upper().split("(", 1)[0].isupper():
        cue = name.upper()
    else:
        cue = "@" + name
    lines = [p if p.startswith("(") else _sentences(p, sentence_case) for p in _split_parentheticals(words)]
    # A cue alone would read as action; a speech with no words has nothing to say.
    return "\n".join([cue, *lines]) if lines else ""


def _split_parentheticals(words: str) -> list[str]:
    """'(beat) Hi. (quietly) Bye.' -> ['(beat)', 'Hi.', '(quietly)', 'Bye.']."""
    pieces, start = [], 0
    for match in _PARENTHETICAL.finditer(words):
        pieces += [words[start:match.start()].strip(), match.group(0)]
        start = match.end()
    pieces.append(words[start:].strip())
    return [p for p in pieces if p]


def _action(text: str, sentence_case: bool) -> str:
    text = _sentences(text, sentence_case)
    return "!" + text if _misread_as_other(text) else text


def _misread_as_other(text: str) -> bool:
    """Would a Fountain reader take this one-line action for another element?"""
    return (text.startswith(("!", "@", ".", ">", "#", "=", "~")) or bool(_SLUG.match(text))
            or _is_transition(text) or bool(_PAGE_BREAK.fullmatch(text)))


def _sentences(text: str, sentence_case: bool) -> str:
    if not sentence_case:
        return text
    text = re.sub(r"\bi\b", "I", text)
    return _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)


# --------------------------------------------------------------------------- rendering


def render(fountain: str, fmt: str) -> bytes:
    """A Fountain screenplay as a formatted PDF or a standalone HTML page (through screenplain)."""
    if fmt not in ("pdf", "html"):
        raise ScriptRNNError(f"can render a screenplay as pdf or html, not {fmt!r}")
    try:
        from screenplain.parsers import fountain as parser
    except ImportError:
        raise ScriptRNNError("--format pdf/html needs the screenplain package: pip install screenplain") from None
    screenplay = parser.parse(io.StringIO(fountain))
    if fmt == "html":
        from screenplain.export.html import convert

        out = io.StringIO()
        convert(screenplay, out)
        return out.getvalue().encode("utf-8")
    from screenplain.export.pdf import to_pdf

    out = io.BytesIO()
    to_pdf(screenplay, out)  # reportlab writes to any binary file object
    return out.getvalue()


def format_script(texts: list[str], fmt: str, *, sentence_case: bool = False) -> bytes:
    """Generated texts (one per sequence) as one document in ``fmt``; sequences apart by page breaks."""
    if fmt not in FORMATS:
        raise ScriptRNNError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "text":
        return "\n\n".join(texts).encode("utf-8")
    fountain = "\n===\n".join(to_fountain(t, sentence_case=sentence_case) for t in texts)
    return fountain.encode("utf-8") if fmt == "fountain" else render(fountain, fmt)
