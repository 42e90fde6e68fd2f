"""The model card says how the pair was stored, trained and where its answers came from."""
from dataclasses import asdict

from engine.train.model_card import write_model_card
from engine.train.pipeline import Recipe


def record(**recipe):
    accept = {"tau_dflash": 1.5, "tau_d2sd": 1.7, "rows": 10, "acceptance_by_position": [0.4] * 16}
    return {"recipe": asdict(Recipe(**recipe)), "seconds": {"data": 60.0, "block": 120.0},
            "data": {"layers": [1, 13, 25], "samples": 3, "train_samples": 2, "heldout_samples": 1,
                     "answer_tokens": 300, "tokens": 400},
            "vocab": {"size": 64, "answer_coverage": 0.99}, "eval": {"d2sd": accept, "d2sd_reuse": accept},
            "loss": {"block": 3.0, "vp": 4.0}, "command": "d2sd train --out x"}


def test_the_card_names_the_storage_the_precision_and_the_answers_file(tmp_path):
    card = tmp_path / "MODEL_CARD.md"
    write_model_card(card, "t.gguf", "ab" * 32, record())
    text = card.read_text()
    assert "model.safetensors, float16;" in text and "sequences side by side" in text
    assert "- Precision: float32." in text

    r = record(int8=True, bf16=True)
    r["answers"] = "data/t-answers.npz"
    write_model_card(card, "t.gguf", "ab" * 32, r)
    text = card.read_text()
    assert "int8 matrices with a float16 scale per row" in text and "float16;" not in text
    assert "`data/t-answers.npz`" in text and "top-16" in text and "side by side" not in text
    assert "- Precision: bfloat16 matmuls" in text
