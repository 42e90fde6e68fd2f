"""pass@1 of saved benchmark answers: real subprocesses running HumanEval/0's own tests."""
from engine.bench.humaneval_exec import code_block, pass_table, passes, tasks

RIGHT = """Here it is:

```python
def has_close_elements(numbers: List[float], threshold: float) -> bool:
    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])
```
It compares every pair."""
WRONG = RIGHT.replace("< threshold", "> threshold")
CUT_OFF = "```python\ndef has_close_elements(numbers, threshold):\n    for i in range(len(numbers"


def test_code_block_takes_the_first_fence_even_when_cut_off():
    assert code_block(RIGHT).startswith("def has_close_elements(") and "It compares" not in code_block(RIGHT)
    assert code_block(CUT_OFF).endswith("range(len(numbers")
    assert code_block("x = 1\n") == "x = 1\n"


def test_answers_are_judged_by_the_tasks_tests():
    task = tasks()["HumanEval/0"]
    assert passes(task, RIGHT)           # List comes from the task's own imports
    assert not passes(task, WRONG)
    assert not passes(task, CUT_OFF)     # a syntax error
    loop = "```python\ndef has_close_elements(numbers, threshold):\n    while True:\n        pass\n```"
    assert not passes(task, loop, timeout_s=1.0)


def test_pass_table_names_the_prompts_where_a_method_disagrees_with_ar():
    runs = [{"method": "ar", "mode": "greedy", "prompt": "HumanEval/0", "text": RIGHT},
            {"method": "d2sd", "mode": "greedy", "prompt": "HumanEval/0", "text": WRONG},
            {"method": "lookup", "mode": "greedy", "prompt": "HumanEval/0", "text": RIGHT}]
    table = pass_table(runs)
    assert "| ar | greedy | 1/1 | - |" in table
    assert "| d2sd | greedy | 0/1 | HumanEval/0 |" in table
    assert "| lookup | greedy | 1/1 | - |" in table
