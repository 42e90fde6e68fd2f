"""The acceptance-vs-data curve read from ablation rows."""
import json
import math

import pytest

from engine.train import data_curve


def _row(variant: str, steps: int, tokens: int, first: float) -> dict:
    return {"variant": variant, "steps": steps, "first_token": first, "tau_dflash": 1 + first,
            "data": {"train_answer_tokens": tokens}}


def _results() -> dict:
    # first token = 0.1 + 0.05·ln(tokens / 1000) exactly, plus rows the curve must leave out
    rows = [_row(f"train_tokens={n}", 3000, n, 0.1 + 0.05 * math.log(n / 1000)) for n in (24_000, 60_000)]
    rows += [_row("base", 3000, 120_000, 0.1 + 0.05 * math.log(120)),
             _row("num_layers=2", 3000, 120_000, 0.9),                 # another recipe
             _row("train_tokens=24000", 2000, 24_000, 0.9),            # another step count
             {**_row("base", 1000, 0, 0.9), "data": {}}]               # from before rows said their tokens
    return {f"{r['variant']}@{r['steps']}#{i}": r for i, r in enumerate(rows)}


def test_the_curve_takes_only_data_rows_at_one_step_count_and_fits_their_log():
    pts = data_curve.points(_results(), 3000)
    assert [p[0] for p in pts] == [24_000, 60_000, 120_000]
    a, b = data_curve.fit(pts)
    assert b == pytest.approx(0.05) and a == pytest.approx(0.1 - 0.05 * math.log(1000))
    assert data_curve.tokens_for(0.1 + 0.05 * math.log(1000), a, b) == pytest.approx(1_000_000)
    assert data_curve.tokens_for(0.5, a, -0.01) == math.inf


def test_one_data_size_is_refused_in_one_line(tmp_path, capsys):
    path = tmp_path / "ablation.json"
    path.write_text(json.dumps({"a": _row("base", 3000, 120_000, 0.3)}))
    assert data_curve.main([str(path), "--steps", "3000"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "two data sizes" in err and str(path) in err


def test_the_command_prints_the_table_and_draws_the_curve(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "ablation.json"
    path.write_text(json.dumps(_results()))
    png = tmp_path / "curve.png"
    assert data_curve.main([str(path), "--steps", "3000", "--png", str(png), "--goal", "0.4"]) == 0
    out = capsys.readouterr().out
    assert "| 120,000 |" in out and "0.4 at ≈" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
