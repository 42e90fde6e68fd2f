"""PyInstaller runtime hook, run before the app: load llama.cpp's CPU backend.

The bundle's llama.cpp is built portable (GGML_BACKEND_DL with GGML_CPU_ALL_VARIANTS): no CPU backend is
linked in; each CPU variant (x64, sse42, haswell, skylakex, ...) is a library of its own, and ggml scores
them all and loads the best one this CPU can run. llama-cpp-python never asks ggml to do that, so a model
would find no backend. Builds with linked-in backends (macOS Metal) register them at load already.
"""
import ctypes
import os

from llama_cpp import _ggml

_ggml.libggml.ggml_backend_reg_count.restype = ctypes.c_size_t
_ggml.libggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
_ggml.libggml.ggml_backend_load_all_from_path.restype = None
if _ggml.libggml.ggml_backend_reg_count() == 0:
    _ggml.libggml.ggml_backend_load_all_from_path(os.fsencode(_ggml.libggml_base_path))
