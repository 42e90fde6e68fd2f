import pytest


@pytest.fixture
def prompt_file(tmp_path):
    p = tmp_path / "prompts.jsonl"
    p.write_text('{"id": "one", "prompt": "def hello world"}\n"print the data"\n')
    return p
