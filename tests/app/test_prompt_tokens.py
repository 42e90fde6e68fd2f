"""Earlier answers go back into the prompt as the ids that generated them, the rest tokenized as usual."""
from __future__ import annotations

import pytest

from app.prompt_tokens import AnswerTokens, fit_context, prompt_tokens
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


def test_a_conversation_too_long_for_the_context_leaves_out_its_oldest_turns(target):
    system = {"role": "system", "content": "You are terse."}
    turns = []
    for i in range(4):
        turns += [{"role": "user", "content": f"question {i} " + "word " * 60},
                  {"role": "assistant", "content": f"answer {i} " + "text " * 60}]
    turns.append({"role": "user", "content": "the last question"})
    tokens, left_out = fit_context(target, [system, *turns], AnswerTokens(), room=200)
    assert left_out > 0 and left_out % 2 == 0            # whole turns, oldest first
    assert tokens == target.chat_tokens([system, *turns[left_out:]])
    assert len(tokens) + 200 <= target.n_ctx
    assert len(target.chat_tokens([system, *turns[left_out - 2:]])) + 200 > target.n_ctx   # no more than needed
    # a question that alone does not fit is left for the engine to refuse
    long = [system, {"role": "user", "content": "word " * 600}]
    assert fit_context(target, long, AnswerTokens(), room=200) == (target.chat_tokens(long), 0)
