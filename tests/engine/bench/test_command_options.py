"""`d2sd bench --methods`: names and options are checked before anything loads or is written."""
import pytest

from engine.bench.command import parse_methods
from engine.cli import main


@pytest.mark.parametrize("spec, words", [
    ("lookup:gamma=1.5", "method option gamma=1.5 in 'lookup:gamma=1.5' is not an integer"),
    ("lookup:gamma=abc", "method option gamma=abc in 'lookup:gamma=abc' is not an integer"),
    ("d2sd:gamma=0", "gamma=0 in 'd2sd:gamma=0' must be between 1 and 256"),
    ("ardraft:p_min=nan", "p_min=nan in 'ardraft:p_min=nan' must be between 0.0 and 1.0"),
    ("d2sd:alt=yes", "alt=yes in 'd2sd:alt=yes' must be 0 or 1"),
    ("lookup:colour=red", "unknown method option 'colour' in 'lookup:colour=red'"),
    ("ar,looqup", "unknown method 'looqup' in --methods"),
    ("lookup:gamma", "'gamma' in 'lookup:gamma' is not key=value"),
])
def test_a_wrong_option_is_one_line_naming_it(spec, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(".", r"\.")) as err:
        parse_methods(spec)
    assert "\n" not in str(err.value)


def test_options_get_their_types():
    assert parse_methods("d2sd:gamma=8:k=2:alt=1,ardraft:p_min=0.5:draft_model=d.gguf") == [
        ("d2sd:gamma=8:k=2:alt=1", "d2sd", {"gamma": 8, "k": 2, "alt": True}),
        ("ardraft:p_min=0.5:draft_model=d.gguf", "ardraft", {"p_min": 0.5, "draft_model": "d.gguf"})]


def test_the_bench_refuses_before_it_writes_anything(tiny_gguf, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["bench", "--model", str(tiny_gguf), "--methods", "ar,lookup:gamma=1.5", "--prompts", "humaneval",
                 "--n", "1", "--out", str(out), "--no-calibrate"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "d2sd: error: method option gamma=1.5 in 'lookup:gamma=1.5' is not an integer"
    assert not out.exists()
