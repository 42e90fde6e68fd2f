"""PyInstaller runtime hook, run before the app: load llama.cpp's CPU backend.

The bundle's llama.cpp is built portable (GGML_BACKEND_DL with GGML_CPU_ALL_VARIANTS): no CPU backend is
linked in; each CPU variant (x64, sse42, haswell, skylakex, ...) is a library of its own, and ggml scores
them all and loads the best one this CPU can run. llama-cpp-python never asks ggml to do that, so a model
would find no backend. Builds with linked-in backends (macOS Metal) register them at load already.

The call goes through libllama's own handle: the wheel holds libggml.so, libggml.so.0 and
libggml.so.0.x as copies (wheels have no symlinks), and llama_cpp._ggml opens libggml.so while libllama
links libggml.so.0, so two ggml registries live in the process. Symbols looked up on libllama's handle
resolve in the libggml it links, the registry its model loader reads.
"""
import ctypes
import os

from llama_cpp import _ggml
from llama_cpp import llama_cpp as _llama

_lib = _llama._lib
_lib.ggml_backend_reg_count.restype = ctypes.c_size_t
_lib.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
_lib.ggml_backend_load_all_from_path.restype = None
if _lib.ggml_backend_reg_count() == 0:
    _lib.ggml_backend_load_all_from_path(os.fsencode(_ggml.libggml_base_path))
