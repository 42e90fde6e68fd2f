import subprocess
import sys

import pytest

from engine.target_settings import TargetSettings


def test_settings_import_without_loading_llama_cpp():
    # importing llama.cpp initialises its backend: the app holds settings long before it loads a model
    code = "import sys, engine.target_settings; print('llama_cpp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("change, words", [({"n_ctx": 8}, "at least 16"), ({"n_seq_max": 0}, "n_seq_max"),
                                           ({"n_ctx": 32, "n_seq_max": 33}, "n_seq_max")])
def test_bad_settings_are_one_clear_error(change, words):
    with pytest.raises(ValueError, match=words):
        TargetSettings(**change)
