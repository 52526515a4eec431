"""Stop sequences: the bounds a request's list must keep, and a matcher whose cost per token does not grow with it.

Checking every stop string against the text after every token costs (stops x length)
per token per sequence, on the one thread that steps every request; a request with
thousands of stops slows everyone else's. ``StopMatcher`` is an Aho-Corasick automaton
instead: all stops in one trie with failure links, so each sequence carries a single
integer state, and each new character moves it by one transition. Per character that
is amortised O(1) whatever the number of stops (a failure link only ever shortens the
match, and the match grew by one character at most per step), and the automaton's
size is the stops' total length, which ``check_stops`` bounds.
"""

from __future__ import annotations

from collections import deque

from ..errors import ScriptRNNError

MAX_STOPS = 16  # TGI and OpenAI allow 4; room for a cast's worth of "NAME:" stops
MAX_STOP_CHARS = 256  # all stops together: a few lines of script


def check_stops(stop: list[str] | None, max_count: int = MAX_STOPS, max_chars: int = MAX_STOP_CHARS) -> None:
    """Refuse a stop list beyond the bounds, naming the field and the bound."""
    if not stop:
        return
    if len(stop) > max_count:
        raise ScriptRNNError(f"stop: at most {max_count} stop sequences, got {len(stop)}")
    total = sum(len(s) for s in stop)
    if total > max_chars:
        raise ScriptRNNError(f"stop: at most {max_chars} characters in all, got {total}")


class StopMatcher:
    """Finds, as text arrives piece by piece, the first point where any of the stops ends.

        matcher = StopMatcher(["\\n\\n", "JERRY:"])
        state, hit = matcher.feed(0, "some text\\n")   # 0 is the state of a fresh sequence
    """

    def __init__(self, stops: list[str] | None):
        self.stops = [s for s in stops or [] if s]
        self.goto: list[dict[str, int]] = [{}]  # trie edges: state -> character -> state
        self.ends: list[bool] = [False]  # does some stop end at this state (or at its failure chain)?
        for stop in self.stops:
            state = 0
            for ch in stop:
                if ch not in self.goto[state]:
                    self.goto.append({})
                    self.ends.append(False)
                    self.goto[state][ch] = len(self.goto) - 1
                state = self.goto[state][ch]
            self.ends[state] = True
        self.fail = self._failure_links()

    def _failure_links(self) -> list[int]:
        """For each state, the state of its longest proper suffix that is also in the trie (breadth first)."""
        fail = [0] * len(self.goto)
        queue = deque(self.goto[0].values())
        while queue:
            state = queue.popleft()
            for ch, child in self.goto[state].items():
                back = fail[state]
                while back and ch not in self.goto[back]:
                    back = fail[back]
                fail[child] = self.goto[back].get(ch, 0) if self.goto[back].get(ch) != child else 0
                self.ends[child] = self.ends[child] or self.ends[fail[child]]
                queue.append(child)
        return fail

    def feed(self, state: int, text: str) -> tuple[int, bool]:
        """Advance a sequence's ``state`` over ``text``; True when a stop ended within it."""
        goto, fail, ends = self.goto, self.fail, self.ends
        hit = False
        for ch in text:
            while state and ch not in goto[state]:
                state = fail[state]
            state = goto[state].get(ch, 0)
            hit = hit or ends[state]
        return state, hit

    def __bool__(self) -> bool:
        return bool(self.stops)
