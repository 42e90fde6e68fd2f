from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from gguf import GGMLQuantizationType, GGUFWriter
from gguf.quants import dequantize, quantize

from engine.drafters import Drafter, SharedHead, TargetInfo
from engine.paths import cache_dir
from tests.engine.drafters.drafter_helpers import small_config
from tests.tiny_gguf import write_tiny_gguf

N_VOCAB, N_EMBD, N_LAYER = 96, 64, 6  # Q8_0 blocks are 32 wide, so rows are 2 blocks


def write_gguf(path: Path, seed: int, with_output: bool) -> dict[str, np.ndarray]:
    """A tiny qwen2-style GGUF: Q8_0 token_embd, F16 output head, one F32 norm (not a head tensor)."""
    rng = np.random.default_rng(seed)
    embd = rng.standard_normal((N_VOCAB, N_EMBD)).astype(np.float32) * 0.05
    out = rng.standard_normal((N_VOCAB, N_EMBD)).astype(np.float32) * 0.05
    w = GGUFWriter(str(path), "qwen2")
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    q8 = quantize(embd, GGMLQuantizationType.Q8_0)
    w.add_tensor("token_embd.weight", q8, raw_shape=q8.shape, raw_dtype=GGMLQuantizationType.Q8_0)
    if with_output:
        w.add_tensor("output.weight", out.astype(np.float16))
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {"embd": embd, "q8": q8, "out": out}


def test_head_is_dequantized_from_gguf_and_cached_by_sha256(tmp_path: Path) -> None:
    gguf = tmp_path / "target.gguf"
    arrays = write_gguf(gguf, seed=0, with_output=True)
    head = SharedHead.from_gguf(gguf)

    assert head.info == TargetInfo("qwen2", n_embd=N_EMBD, n_layer=N_LAYER, n_vocab=N_VOCAB)
    assert not head.tied
    emb, out = head.weights(torch.device("cpu"), torch.float32)
    expected = dequantize(arrays["q8"], GGMLQuantizationType.Q8_0)
    assert emb.shape == (N_VOCAB, N_EMBD)
    assert np.allclose(emb.numpy(), expected, rtol=1e-3, atol=1e-6)  # cached as float16
    assert np.abs(emb.numpy() - arrays["embd"]).max() < 0.01 * np.abs(arrays["embd"]).max()  # Q8_0 error
    assert np.allclose(out.numpy(), arrays["out"], rtol=1e-3, atol=1e-6)
    assert head.weights(torch.device("cpu"), torch.float32)[0] is emb  # one device copy, shared

    memo = json.loads((cache_dir() / "file_sha256.json").read_text())
    sha = memo[str(gguf.resolve())]["sha256"]
    cached = cache_dir() / "shared_head" / f"{sha}.safetensors"
    stamp = cached.stat().st_mtime_ns
    assert SharedHead.from_gguf(gguf).info == head.info
    assert cached.stat().st_mtime_ns == stamp  # reused, not rebuilt

    write_gguf(gguf, seed=1, with_output=True)  # same path, new content: a new hash and cache entry
    SharedHead.from_gguf(gguf)
    new_sha = json.loads((cache_dir() / "file_sha256.json").read_text())[str(gguf.resolve())]["sha256"]
    assert new_sha != sha
    assert cached.is_file() and (cache_dir() / "shared_head" / f"{new_sha}.safetensors").is_file()


def test_missing_output_head_is_tied_to_the_embedding_and_drives_a_drafter(tmp_path: Path) -> None:
    write_gguf(tmp_path / "tied.gguf", seed=2, with_output=False)
    head = SharedHead.from_gguf(tmp_path / "tied.gguf")
    assert head.tied
    emb, out = head.weights(torch.device("cpu"), torch.float32)
    assert out is emb

    config = small_config(hidden_size=N_EMBD, vocab_size=N_VOCAB, mask_token_id=N_VOCAB - 1,
                          num_target_layers=N_LAYER, target_layer_ids=(1, 4))
    drafter = Drafter.random(config, head)
    drafter.append_context(np.zeros((3, config.feature_size), np.float32))
    tokens, _ = drafter.draft(np.array([[5] + [N_VOCAB - 1] * 7]))
    assert tokens.shape == (1, 8)


def test_the_projects_tiny_llama_gguf_reads_too(tmp_path: Path) -> None:
    info = SharedHead.from_gguf(write_tiny_gguf(tmp_path / "tiny.gguf", n_embd=64, n_layer=2)).info
    assert (info.architecture, info.n_embd, info.n_layer) == ("llama", 64, 2)
