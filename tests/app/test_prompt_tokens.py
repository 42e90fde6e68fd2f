"""Earlier answers go back into the prompt as the ids that generated them, the rest tokenized as usual."""
from __future__ import annotations

import pytest

from app.prompt_tokens import AnswerTokens, prompt_tokens
from engine.target import Target, TargetSettings


@pytest.fixture(scope="module")
def target(tiny_gguf):
    with Target.load(tiny_gguf, TargetSettings(n_ctx=512, n_threads=1)) as t:
        yield t


def test_without_known_answers_it_is_the_chat_prompt(target):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"}, {"role": "user", "content": "more"}]
    assert prompt_tokens(target, messages, AnswerTokens()) == target.chat_tokens(messages)


def test_a_known_answer_keeps_its_generated_ids(target):
    answer = "hello there"
    generated = target.tokenize(" hello there", special=False)   # ids the text alone would not give
    answers = AnswerTokens()
    answers.remember(answer, generated)
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": answer},
                {"role": "user", "content": "more"}]
    plain = target.chat_tokens(messages)
    spliced = prompt_tokens(target, messages, answers)
    before = target.chat_tokens(messages[:1])   # ends with the assistant header the answer follows
    assert spliced[:len(before)] == before
    assert spliced[len(before):len(before) + len(generated)] == generated
    assert spliced[len(before) + len(generated):] == plain[len(plain) - (len(spliced) - len(before) - len(generated)):]


def test_the_oldest_answers_are_forgotten_first():
    answers = AnswerTokens(keep=2)
    for i in range(3):
        answers.remember(f"a{i}", [i])
    assert (answers.get("a0"), answers.get("a1"), answers.get("a2")) == (None, [1], [2])
