# The two commands the README promises: `make demo` and `make test`.
# Both run `make install` first, which is idempotent (seconds when done).
PY := .venv/bin/python
SHELL := /bin/bash

.PHONY: install demo test train-default bench clean

install:
	@bash scripts/install.sh

demo: install
	$(PY) -m mlreco_spice.demo --output demo_output

test: install
	$(PY) -m pytest -q

train-default: install
	bash scripts/train_default.sh

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf demo_output .pytest_cache
