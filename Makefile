# Quick start: `make demo` then `make test`. Override the torch pin for CUDA, e.g.
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cu126
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_INDEX ?=
DEMO_OUT ?= runs/demo

.PHONY: demo test test-slow bench lint install clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(if $(TORCH_INDEX),$(PY) -m pip install -q torch==2.13.0 --index-url $(TORCH_INDEX),)
	$(PY) -m pip install -q -e '.[test,ray]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/inrlab fit astronaut --out $(DEMO_OUT) --resume

test: install
	$(PY) -m ruff check inrlab tests bench
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	$(VENV)/bin/inrlab bench step-time

clean:
	rm -rf $(VENV) runs .pytest_cache
