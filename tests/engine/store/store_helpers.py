"""Builders shared by the store tests: tiny real GGUF files, drafter checkpoints, a test catalog."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from engine.store.catalog import Catalog, parse_catalog

_NETWORK_EVENTS = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto"}


class SocketGuard:
    """A sys audit hook: it sees every socket the interpreter opens, whichever library opens it."""

    def __init__(self) -> None:
        self.on = False
        self.attempts: list[tuple[str, str]] = []

    def __call__(self, event: str, args: tuple) -> None:
        if self.on and event in _NETWORK_EVENTS:
            self.attempts.append((event, repr(args)[:200]))
            raise ConnectionRefusedError(f"test guard: {event} attempted while offline")

    @contextmanager
    def paused(self) -> Iterator[None]:
        self.on = False
        try:
            yield
        finally:
            self.on = True


SOCKET_GUARD = SocketGuard()
sys.addaudithook(SOCKET_GUARD)  # audit hooks cannot be removed: it stays, switched off, for the session


def write_gguf(path: Path, *, n_layer: int = 4, hidden: int = 64, vocab: int = 96, quantized: bool = False) -> Path:
    """A tiny but real GGUF file (metadata + one tensor) for the parts that read GGUF metadata.
    `quantized`: the tensor in Q8_0, as real models store theirs (bytes, not floats, to a reader that
    does not know the type), followed by a norm tensor."""
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_block_count(n_layer)
    writer.add_embedding_length(hidden)
    writer.add_context_length(2048)  # llama.cpp needs it, so engine.gguf_check refuses a file without it
    writer.add_token_list([f"t{i}".encode() for i in range(vocab)])
    embedding = np.zeros((vocab, hidden), dtype=np.float32)
    if quantized:
        writer.add_tensor("token_embd.weight", gguf.quants.quantize(embedding, gguf.GGMLQuantizationType.Q8_0),
                          raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        writer.add_tensor("output_norm.weight", np.ones(hidden, dtype=np.float32))
    else:
        writer.add_tensor("token_embd.weight", embedding)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def drafter_files(*, hidden: int = 64, vocab: int = 96, layers: list[int] | None = None, mask: int = 95) -> dict:
    """config.json (DFlash layout) and a minimal valid model.safetensors, as bytes."""
    config = {
        "architectures": ["DFlashDraftModel"],
        "hidden_size": hidden,
        "vocab_size": vocab,
        "block_size": 16,
        "dflash_config": {"target_layer_ids": layers if layers is not None else [0, 2], "mask_token_id": mask},
    }
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    tensors = len(header).to_bytes(8, "little") + header + bytes(8)
    return {"config.json": json.dumps(config).encode(), "model.safetensors": tensors}


def write_drafter(folder: Path, **shape: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in drafter_files(**shape).items():
        (folder / name).write_bytes(data)
    return folder


def tiny_catalog(*, target_sha: str | None = None, target_size: int | None = None) -> Catalog:
    """A catalog whose bundle lives on the fake hub: org/tiny-GGUF + org/tiny-DFlash."""

    def hf(repo: str, name: str) -> dict:
        return {"type": "hf", "repo": repo, "filename": name, "revision": "main"}

    return parse_catalog(
        {
            "schema": 1,
            "artifacts": [
                {
                    "id": "tiny-target",
                    "kind": "target",
                    "name": "Tiny",
                    "license": "apache-2.0",
                    "min_memory_bytes": 1 << 20,
                    "files": [
                        {
                            "name": "tiny-Q4_K_M.gguf",
                            "size": target_size,
                            "sha256": target_sha,
                            "source": hf("org/tiny-GGUF", "tiny-Q4_K_M.gguf"),
                        }
                    ],
                },
                {
                    "id": "tiny-drafter",
                    "kind": "drafter",
                    "name": "Tiny DFlash",
                    "license": None,
                    "min_memory_bytes": 1 << 20,
                    "files": [
                        {"name": n, "size": None, "sha256": None, "source": hf("org/tiny-DFlash", n)}
                        for n in ("config.json", "model.safetensors")
                    ],
                },
            ],
            "bundles": [
                {
                    "id": "tiny",
                    "name": "Tiny",
                    "description": "test bundle",
                    "default": True,
                    "target": "tiny-target",
                    "drafter_block": "tiny-drafter",
                    "drafter_vp": "tiny-drafter",
                    "classic_draft": None,
                },
            ],
        }
    )
