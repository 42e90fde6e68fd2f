"""Where the engine keeps models and caches (platformdirs, overridable for tests and portable installs)."""
import os
from pathlib import Path

from platformdirs import user_cache_dir, user_config_dir, user_data_dir

APP = "d2sd-desktop"


def data_dir() -> Path:
    return Path(os.environ.get("D2SD_DATA_DIR") or user_data_dir(APP))


def cache_dir() -> Path:
    return Path(os.environ.get("D2SD_CACHE_DIR") or user_cache_dir(APP))


def config_dir() -> Path:
    return Path(os.environ.get("D2SD_CONFIG_DIR") or user_config_dir(APP))


def models_dir() -> Path:
    return data_dir() / "models"
