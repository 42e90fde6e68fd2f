"""App settings (model, method and its knobs, llama.cpp resources), stored as JSON in the config dir."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from engine.methods import D2SD_K, TREE_BUDGET
from engine.paths import config_dir


# Which settings knobs each engine method uses (the dialog greys out the rest); a method not listed
# runs with its own defaults.
METHOD_KNOBS: dict[str, tuple[str, ...]] = {
    "ar": (),
    "lookup": ("gamma",),
    "dflash": ("gamma", "node_budget"),
    "naive": ("gamma", "k", "node_budget"),
    "ddtree": ("gamma", "node_budget"),
    "d2sd": ("gamma", "k", "node_budget", "runner_up"),
}
# settings field -> engine.methods.make_method keyword
_METHOD_KWARGS = {"gamma": "gamma", "k": "k", "node_budget": "budget", "runner_up": "alt"}


@dataclass
class AppSettings:
    model_path: str = ""            # "" means the embedded default target
    drafter_dir: str = ""           # drafter 1 checkpoint folder; "" means the pair shipped for the target
    vp_drafter_dir: str = ""        # VP drafter folder beside drafter_dir; "" reuses drafter 1 in its place
    method: str = "auto"            # speculative by default: drafts what pays on this machine and model
    gamma: int = 16                 # block length (paper default)
    k: int = D2SD_K                 # d2sd's re-anchor rows (the paper's 4 with its rows), naive's resampled rows
    node_budget: int = TREE_BUDGET  # most nodes in one verified tree (tree methods add the likeliest first)
    runner_up: bool = True          # d2sd: VP rows re-anchor on drafter 1's runner-up tokens (else the paper's points)
    n_gpu_layers: int = -1          # -1: every layer when llama.cpp was built with GPU offload
    n_threads: int = max(1, min(8, os.cpu_count() or 1))
    n_ctx: int = 0                  # 0: the model's training context, capped by free memory (engine.context_size)
    max_tokens: int = 1024
    show_provenance: bool = False   # colour answer text by which proposer produced each token
    theme: str = "system"           # "system" follows the desktop's palette; or "light", "dark"
    serve: bool = False             # serve the loaded model to other tools with the OpenAI API (as `d2sd serve`)
    serve_host: str = "127.0.0.1"   # any address that is not loopback needs serve_api_key
    serve_port: int = 8080
    serve_api_key: str = ""

    def method_params(self) -> dict:
        """Keyword arguments for make_method: the knobs the chosen method uses."""
        return {_METHOD_KWARGS[name]: getattr(self, name) for name in METHOD_KNOBS.get(self.method, ())}

    def server_options(self) -> dict | None:
        """engine.server.serve.LocalServer's keywords for serving the app's model with the app's method
        (so the window and the clients share one built method), or None when serving is off."""
        if not self.serve:
            return None
        return {"method": self.method, "params": self.method_params(),
                "drafters": (self.drafter_dir, self.vp_drafter_dir), "host": self.serve_host,
                "port": self.serve_port, "api_key": self.serve_api_key or None}


def settings_path() -> Path:
    return config_dir() / "settings.json"


# Older files hold the old defaults, written for everyone, so they are read as the new ones: before format 2
# (no "format" key) the context, 4096, before "from the model"; before format 3 runner_up, False, before
# runner-up rows became d2sd's default, and node_budget, 64, before d2sd's trees were built likeliest node
# first (the same τ from 32); before format 4 k, 4, before eight runner-up rows became d2sd's default. The
# format number is saved with every file.
FORMAT = 4
_OLD_DEFAULT_N_CTX = 4096
_OLD_DEFAULT_NODE_BUDGET = 64
_OLD_DEFAULT_K = 4


def load_settings(path: Path | None = None) -> AppSettings:
    """Unknown keys (from a newer version) are dropped; a corrupt file falls back to defaults."""
    path = path or settings_path()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return AppSettings()
    if not isinstance(data, dict):
        return AppSettings()
    defaults = AppSettings()
    kept = {f.name: data[f.name] for f in fields(AppSettings)
            if f.name in data and type(data[f.name]) is type(getattr(defaults, f.name))}
    written = data.get("format", 1) if type(data.get("format", 1)) is int else FORMAT
    if written < 2 and kept.get("n_ctx") == _OLD_DEFAULT_N_CTX:
        del kept["n_ctx"]
    if written < 3 and kept.get("runner_up") is False:
        del kept["runner_up"]
    if written < 3 and kept.get("node_budget") == _OLD_DEFAULT_NODE_BUDGET:
        del kept["node_budget"]
    if written < 4 and kept.get("k") == _OLD_DEFAULT_K:
        del kept["k"]
    return AppSettings(**kept)


def save_settings(settings: AppSettings, path: Path | None = None) -> None:
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    # readable by the user alone: it may hold the server's API key
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(json.dumps({"format": FORMAT, **asdict(settings)}, indent=2) + "\n")
    os.replace(tmp, path)
