"""Training prompts: the library prompts are cut correctly, and adding them moved no earlier prompt."""
from engine.train import prompts
from engine.train.prompts import COMPLETE, _interleave, code_prompts, library_prompts, training_prompts


def test_library_prompts_keep_signature_and_docstring_of_public_functions(tmp_path):
    doc = "Return the words of text, longest first; ties keep their order in the text, as sorted does."
    (tmp_path / "words.py").write_text(
        "import re\n\n"
        f"def by_length(text: str,\n              reverse=True):\n    \"\"\"{doc}\"\"\"\n    return sorted(text.split(), key=len)\n\n"
        f"def _private(x):\n    \"\"\"{doc}\"\"\"\n    return x\n\n"
        f"def only_doc(x):\n    \"\"\"{doc}\"\"\"\n\n"
        "def short_doc(x):\n    \"\"\"Too short.\"\"\"\n    return x\n")
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "test_words.py").write_text(f"def check(x):\n    \"\"\"{doc}\"\"\"\n    return x\n")
    (tmp_path / "broken.py").write_text("def (:\n")
    assert library_prompts(tmp_path) == [
        f"{COMPLETE}\n\n```python\ndef by_length(text: str,\n              reverse=True):\n    \"\"\"{doc}\"\"\"\n```"]


def test_library_prompts_come_after_every_earlier_prompt(monkeypatch):
    with_library = training_prompts()
    monkeypatch.setattr(prompts, "library_prompts", lambda: [])
    without = training_prompts()
    kept = 2 * len(code_prompts())    # code and chat interleave one to one up to here
    assert with_library[:kept] == without[:kept]
    assert len(with_library) == len(without) + len(library_prompts())
    library = set(library_prompts())
    assert sum(p in library for p in with_library[kept:kept + 30]) == 20   # two to each chat prompt


def test_interleave_takes_its_share_of_each_list_until_all_are_used():
    assert _interleave(([1, 2, 3, 4, 5], ["a", "b"]), (2, 1)) == [1, 2, "a", 3, 4, "b", 5]
