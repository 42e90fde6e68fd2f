# Two commands a newcomer needs: `make run` and `make test`. Both bootstrap .venv once; later runs are quiet.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "Setting up $(VENV) (first time only: llama-cpp-python compiles from source, about 15 minutes)..."
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[test,default-model,bench]'
	@$(VENV)/bin/d2sd models install-default --quiet
	@touch $(STAMP)

run: $(STAMP)
	@$(VENV)/bin/d2sd-desktop

test: $(STAMP)
	@$(PY) -m pytest -q -rs --durations=10

# `make anchors`: llama.cpp's own llama-speculative-simple and llama-completion, built from the llama.cpp that is
# vendored in the sdist of the installed llama-cpp-python, so `d2sd bench --anchors` compares against the same ggml
# code the engine runs. CPU build, about 13 minutes on two cores; it lives in the user cache (outside the repo, so a
# fresh checkout or `git clean` keeps it) and a second run only checks the version and recipe stamps. Static binaries,
# so the sources and build tree are dropped once they are copied out. Jobs: $CMAKE_BUILD_PARALLEL_LEVEL, else all
# cores. The one addition to llama.cpp's sources: engine/bench/llama_log_drain.cpp, so no timing line is lost at exit.
ANCHORS_DIR = $(shell $(PY) -c 'from engine.paths import cache_dir; print(cache_dir() / "anchors")')
ANCHORS_RECIPE = $(shell $(PY) -c 'from engine.bench.anchors import RECIPE; print(RECIPE)')
LOG_DRAIN = $(CURDIR)/engine/bench/llama_log_drain.cpp
LLAMA_CPP_PY_VERSION = $(shell $(PY) -c 'from importlib.metadata import version; print(version("llama_cpp_python"))')

.PHONY: anchors
# Not a prerequisite on $(STAMP): an edit to pyproject.toml need not reinstall the venv to build these.
anchors:
	@test -x $(PY) || { echo "make anchors needs $(VENV); run 'make test' once first" >&2; exit 1; }
	@set -e; dir='$(ANCHORS_DIR)'; ver='$(LLAMA_CPP_PY_VERSION)'; sdist="llama_cpp_python-$$ver.tar.gz"; \
	if [ -x "$$dir/bin/llama-speculative-simple" ] && [ -x "$$dir/bin/llama-completion" ] \
	   && [ "$$(cat "$$dir/bin/VERSION" 2>/dev/null)" = "$$ver" ] \
	   && [ "$$(cat "$$dir/bin/RECIPE" 2>/dev/null)" = "$(ANCHORS_RECIPE)" ]; then \
	  echo "llama.cpp anchors (llama-cpp-python $$ver) already built in $$dir/bin"; exit 0; fi; \
	echo "Building llama.cpp anchors from llama-cpp-python $$ver's sdist into $$dir (CPU; about 13 minutes)..."; \
	mkdir -p "$$dir"; \
	test -f "$$dir/$$sdist" || $(PY) -m pip download -q --disable-pip-version-check --no-binary :all: --no-deps \
	  -d "$$dir" "llama-cpp-python==$$ver"; \
	if [ ! -f "$$dir/src/CMakeLists.txt" ]; then rm -rf "$$dir/src"; mkdir -p "$$dir/src"; \
	  tar -xzf "$$dir/$$sdist" -C "$$dir/src" --strip-components=3 "llama_cpp_python-$$ver/vendor/llama.cpp"; fi; \
	grep -q llama_log_drain "$$dir/src/CMakeLists.txt" || printf '\ntarget_sources(%s PRIVATE "%s")\n' \
	  llama-speculative-simple '$(LOG_DRAIN)' llama-completion '$(LOG_DRAIN)' >>"$$dir/src/CMakeLists.txt"; \
	cmake -S "$$dir/src" -B "$$dir/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
	  -DGGML_METAL=OFF -DGGML_CUDA=OFF -DLLAMA_OPENSSL=OFF \
	  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF >"$$dir/configure.log"; \
	cmake --build "$$dir/build" --config Release -j "$${CMAKE_BUILD_PARALLEL_LEVEL:-$$(getconf _NPROCESSORS_ONLN)}" \
	  --target llama-speculative-simple llama-completion; \
	rm -rf "$$dir/bin"; mkdir -p "$$dir/bin"; \
	cp "$$dir/build/bin/llama-speculative-simple" "$$dir/build/bin/llama-completion" "$$dir/bin/"; \
	echo "$$ver" >"$$dir/bin/VERSION"; echo "$(ANCHORS_RECIPE)" >"$$dir/bin/RECIPE"; \
	rm -rf "$$dir/src" "$$dir/build" "$$dir/$$sdist"; \
	echo "llama.cpp anchors built in $$dir/bin"

# `make package`: the app as a one-folder bundle for this OS in dist/ (Linux tarball, macOS .app), smoke-
# tested headless; the first run compiles a portable llama.cpp (long). See packaging/README.md.
.PHONY: package
package:
	@packaging/build.sh
