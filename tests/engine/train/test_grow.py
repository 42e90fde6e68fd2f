"""Growing the answers file on the tiny random GGUF: the same answers as the data stage, resumed without
repeats, stopped without a half answer, a foreign file refused in one line."""
import numpy as np

from engine.drafters.cache import file_sha256
from engine.train import data as data_stage
from engine.train.grow import grow, main

PROMPTS = [f"Write a function number {i} that adds {i} to a list of numbers." for i in range(10)]
SETTINGS = data_stage.DataSettings(layers=(), slots=4, max_new=24, shard_samples=3, n_threads=1)


def test_grown_answers_are_the_data_stages_answers_and_a_rerun_adds_only_new_prompts(tiny_gguf, tmp_path):
    sha = file_sha256(tiny_gguf)
    path = tmp_path / "answers.npz"
    added = grow(tiny_gguf, path, PROMPTS[:6], SETTINGS, log=lambda m: None)
    first = data_stage.load_answers(path, sha, max_new=24)
    assert sorted(first) == list(range(6)) and added == sum(len(t) - n for t, n in first.values())

    # the data stage (features captured, same slots) writes the very same tokens
    folder = tmp_path / "data"
    data_stage.generate(tiny_gguf, sha, PROMPTS[:6], folder, data_stage.DataSettings(
        layers=(0, 1), slots=4, max_new=24, shard_samples=3, n_threads=1), max_answer_tokens=10**6, log=lambda m: None)
    data_stage.save_answers(folder, tmp_path / "staged.npz")
    staged = data_stage.load_answers(tmp_path / "staged.npz", sha, max_new=24)
    assert {i: list(t) for i, (t, _) in staged.items()} == {i: list(t) for i, (t, _) in first.items()}

    more = grow(tiny_gguf, path, PROMPTS, SETTINGS, log=lambda m: None)
    second = data_stage.load_answers(path, sha, max_new=24)
    assert sorted(second) == list(range(10))
    assert all(list(second[i][0]) == list(first[i][0]) for i in first)  # nothing redone
    assert more == sum(len(t) - n for i, (t, n) in second.items() if i >= 6)


def test_a_stop_drops_the_answers_in_progress_and_keeps_the_finished(tiny_gguf, tmp_path):
    from engine.target import Target, TargetSettings

    path = tmp_path / "answers.npz"
    steps = iter(range(10**6))
    grow(tiny_gguf, path, PROMPTS, SETTINGS, stop=lambda: next(steps) >= 30, log=lambda m: None)
    kept = data_stage.load_answers(path, file_sha256(tiny_gguf), max_new=24)
    assert 0 < len(kept) < len(PROMPTS)
    with Target.load(tiny_gguf, TargetSettings(n_ctx=256, n_threads=1)) as t:
        for tokens, n_prompt in kept.values():  # whole answers only: ended by the model or at the cap
            assert t.is_eog(int(tokens[-1])) or len(tokens) - n_prompt == 24


def test_a_file_of_another_target_is_refused_in_one_line(tiny_gguf, tmp_path, capsys):
    path = tmp_path / "answers.npz"
    data_stage.write_answers(path, {0: (np.array([1, 2, 3], dtype=np.int32), 2)}, "0" * 64, 320)
    before = path.read_bytes()
    assert main([str(path), "--target", str(tiny_gguf), "--threads", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("grow: error: ") and "another target" in err and "\n" not in err
    assert path.read_bytes() == before


def test_the_thread_count_follows_the_measured_step_time():
    chooser = data_stage.ThreadChooser((1, 2), probe=8, trial=2)

    def run(steps, seconds_per_row):
        used = []
        for _ in range(steps):
            n = chooser.next()
            used.append(n)
            chooser.record(n, seconds_per_row[n] * 16, 16)
        return used

    quiet = run(200, {1: 0.050, 2: 0.025})       # both cores free: all of them
    assert quiet[:4] == [1, 1, 2, 2] and quiet[-100:].count(2) > 95
    busy = run(400, {1: 0.055, 2: 0.25})         # another process holds a core: one thread
    assert busy[-300:].count(1) > 290            # probes of 2 grow rare while they keep losing
    again = run(300, {1: 0.050, 2: 0.025})       # the other work ended: back to both cores, within a probe
    assert again[-40:].count(2) >= 36
