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

# The speed benchmarks of BENCHMARKS.md, with its commands (about 15 min on an idle
# 2-core machine; train_step.py needs runs/default_data/train.h5 from train-default).
# The accuracy benchmark takes ~10 min on an idle 2-core machine (500 events): see BENCHMARKS.md for its command.
bench: install
	$(PY) benchmarks/sim_rate.py --events 30 --runs 5
	$(PY) benchmarks/io_rate.py
	$(PY) benchmarks/cluster_speed.py --repeats 5 --events 3
	$(PY) benchmarks/model_speed.py --events 2 --repeats 3
	$(PY) benchmarks/format_rate.py --sim-size 512 --events 20
	$(PY) benchmarks/train_step.py --steps 6 --depths 5 6 7

clean:
	rm -rf demo_output .pytest_cache
