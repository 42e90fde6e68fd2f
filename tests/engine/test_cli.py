"""`d2sd` as a user runs it: one clear line and a non-zero exit on bad input, text on good input."""
import signal
import subprocess
import sys
from dataclasses import replace


def d2sd(*args, stdin=""):
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                          input=stdin, timeout=120)


def test_missing_model_is_one_line_without_traceback(tmp_path):
    r = d2sd("generate", "hi", "--model", str(tmp_path / "nope.gguf"))
    assert r.returncode == 1
    assert r.stderr.strip() == f"d2sd: error: model file not found: {tmp_path / 'nope.gguf'}"


def test_text_file_renamed_gguf_and_bad_sampler(tmp_path, tiny_gguf):
    fake = tmp_path / "notes.gguf"
    fake.write_text("hello\n")
    r = d2sd("generate", "hi", "--model", str(fake))
    assert r.returncode == 1 and "not a GGUF model file" in r.stderr and "Traceback" not in r.stderr
    r = d2sd("generate", "hi", "--model", str(tiny_gguf), "--top-p", "1.5")
    assert r.returncode == 1 and r.stderr.strip() == "d2sd: error: top_p must be in (0, 1], got 1.5"


def test_generate_streams_text_and_stats(tiny_gguf):
    r = d2sd("generate", "def hello", "--model", str(tiny_gguf), "--max-tokens", "12", "--method", "lookup",
             "--stats", "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()
    assert "[lookup] " in r.stderr and "tau" in r.stderr


def test_chat_repl_answers_and_quits_on_eof(tiny_gguf):
    r = d2sd("chat", "--model", str(tiny_gguf), "--max-tokens", "8", "--threads", "1", stdin="hello\nworld\n")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("[auto] ") == 2   # auto is the default method


def test_ctrl_c_in_chat_ends_the_answer_not_the_chat(endless_gguf, tiny_drafters):
    # d2sd captures target features in llama.cpp's eval callback, where a raised KeyboardInterrupt was lost
    block, vp = tiny_drafters
    chat = subprocess.Popen([sys.executable, "-m", "engine.cli", "chat", "--model", str(endless_gguf), "--threads", "1",
                             "--ctx", "4096", "--max-tokens", "4000", "--method", "d2sd", "--gamma", "4", "--k", "2",
                             "--drafter", str(block), "--vp-drafter", str(vp)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        chat.stdin.write("hello\n")
        chat.stdin.flush()
        assert chat.stdout.read(8)  # streaming has begun
        chat.send_signal(signal.SIGINT)
        out, err = chat.communicate("", timeout=120)  # then Ctrl-D at the next prompt
    finally:
        chat.kill()
    assert chat.returncode == 0, err
    assert "Traceback" not in err and "[stopped]" not in err
    [stats] = [line for line in err.splitlines() if line.startswith("[d2sd] ")]
    assert "stop: cancel" in stats and int(stats.split()[1]) < 4000


def test_models_verify(tiny_gguf):
    r = d2sd("models", "verify", str(tiny_gguf))
    assert r.returncode == 0 and r.stdout.startswith("ok: tiny-random-llama (llama, 3 layers")


def test_d2sd_with_saved_drafters_and_a_missing_drafter(tmp_path, tiny_gguf):
    from tests.engine.drafters.drafter_helpers import save_pair_for

    save_pair_for(tiny_gguf, tmp_path)
    r = d2sd("generate", "def hello", "--model", str(tiny_gguf), "--method", "d2sd", "--drafter",
             str(tmp_path / "block"), "--vp-drafter", str(tmp_path / "vp"), "--gamma", "8", "--k", "2",
             "--max-tokens", "10", "--stats", "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert "[d2sd] 10 tokens" in r.stderr
    r = d2sd("generate", "def hello", "--model", str(tiny_gguf), "--method", "d2sd", "--no-alt", "--drafter",
             str(tmp_path / "block"), "--gamma", "8", "--max-tokens", "10", "--stats", "--threads", "1")
    assert r.returncode == 0 and "[d2sd] 10 tokens" in r.stderr, r.stderr
    r = d2sd("generate", "hi", "--model", str(tiny_gguf), "--method", "dflash", "--alt", "--drafter",
             str(tmp_path / "block"))
    assert r.returncode == 1 and "a d2sd option" in r.stderr and "Traceback" not in r.stderr
    r = d2sd("generate", "hi", "--model", str(tiny_gguf), "--method", "dflash")
    assert r.returncode == 1 and "needs a drafter" in r.stderr and "Traceback" not in r.stderr


def test_train_command_line_overrides_the_recipe():
    from engine.cli import _parser, train_recipe
    from engine.drafters.device import cpu_bf16_fast
    from engine.train.pipeline import Recipe

    default = train_recipe(_parser().parse_args(["train", "--out", "x"]))
    assert default == replace(Recipe(), bf16=cpu_bf16_fast()) and default.scale_features
    assert not train_recipe(_parser().parse_args(["train", "--out", "x", "--fp32"])).bf16
    r = train_recipe(_parser().parse_args(["train", "--out", "x", "--raw-features", "--block-steps", "7000",
                                           "--layers", "1,13,25", "--vocab-size", "4096"]))
    assert not r.scale_features and r.block_steps == 7000 and r.layers == (1, 13, 25) and r.vocab_size == 4096
    r = train_recipe(_parser().parse_args(["train", "--out", "x", "--labels", "hard", "--num-layers", "2", "--int8",
                                           "--lam", "2"]))
    assert r.labels == "hard" and r.num_layers == 2 and r.int8 and r.lam == 2.0 and default.labels == "topk" and not default.int8
