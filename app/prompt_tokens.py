"""A chat prompt's tokens with each earlier answer as the token ids the model generated.

Re-tokenizing an answer's text can split it differently from how it was generated, and the cached
prefix (the target's and the drafters') ends at the first difference: a follow-up turn would read the
previous answer again. So the worker remembers the ids of recent answers and splices them in.
"""
from __future__ import annotations

from collections import OrderedDict

KEEP_ANSWERS = 64   # a long conversation's answers; each costs only its token ids


class AnswerTokens:
    """Recent answers' text -> the ids that produced it, oldest dropped first."""

    def __init__(self, keep: int = KEEP_ANSWERS):
        self.keep = keep
        self._ids: OrderedDict[str, list[int]] = OrderedDict()

    def remember(self, text: str, ids: list[int]) -> None:
        if text and ids:
            self._ids[text] = list(ids)
            self._ids.move_to_end(text)
            while len(self._ids) > self.keep:
                self._ids.popitem(last=False)

    def get(self, text: str) -> list[int] | None:
        return self._ids.get(text)

    def clear(self) -> None:
        self._ids.clear()


def prompt_tokens(target, messages: list[dict], answers: AnswerTokens) -> list[int]:
    """target.chat_tokens(messages), except that an assistant message whose ids are known keeps them
    (its text is found in the rendered prompt; a template that altered it just tokenizes it anew)."""
    text = target.chat_prompt(messages)
    bos = target.tokenize("")        # what tokenize puts in front of every text (BOS, or nothing)
    out: list[int] = []
    done = 0

    def add(piece: str) -> None:
        ids = target.tokenize(piece)
        out.extend(ids if not out else ids[len(bos):] if ids[:len(bos)] == bos else ids)

    for m in messages:
        ids = answers.get(m["content"]) if m["role"] == "assistant" else None
        at = text.find(m["content"], done) if ids else -1
        if at < 0:
            continue
        add(text[done:at])
        out.extend(ids)
        done = at + len(m["content"])
    add(text[done:])
    return out


def fit_context(target, messages: list[dict], answers: AnswerTokens, room: int) -> tuple[list[int], int]:
    """The prompt's tokens, leaving `room` tokens of the context for the answer: while it does not fit,
    the oldest turn goes (a user message and the answer to it), never the system prompt nor the
    question being asked. Returns (tokens, messages left out); too long a question is still too long,
    and the engine says so."""
    system = [m for m in messages[:1] if m["role"] == "system"]
    turns = messages[len(system):]
    dropped = 0
    while True:
        tokens = prompt_tokens(target, system + turns, answers)
        if len(tokens) + room <= target.n_ctx or len(turns) <= 1:
            return tokens, dropped
        cut = next((i for i in range(1, len(turns)) if turns[i]["role"] == "user"), len(turns) - 1)
        turns = turns[cut:]
        dropped += cut
