# Quick start: `make demo` (explain two sample photos) and `make test` (run the tests).
# Both create the virtual environment in .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
OUT ?= demo-out

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,app]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cameras samples --out $(OUT)/samples
	$(VENV)/bin/cameras explain $(OUT)/samples/chelsea.jpg $(OUT)/samples/coffee.jpg --topk 2 --out $(OUT)
	@echo "overlays, maps and JSON are in $(OUT)/"

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(OUT) .pytest_cache

bench: $(STAMP)
	$(PY) benchmarks/run.py
	$(PY) benchmarks/methods.py
	$(PY) benchmarks/fast_paths.py
	$(PY) benchmarks/bf16_synthetic.py
	$(PY) benchmarks/vit_bf16_parts.py
