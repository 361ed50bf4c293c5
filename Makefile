# vpg_ros2: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ENV := . tools/env.sh &&
PYTEST_ARGS ?=
CELLS ?= 1
ACTIONS ?= 1500
SEED ?= 0
RUN ?= results/runs/vpg-seed$(SEED)
TRAIN_ARGS ?=
EVAL_RUNS ?= 30
EVAL_ARGS ?=
SOAK_ARGS ?=
# VIEW=1: serve the demo or training live to Foxglove / Lichtblick (ws://localhost:$(VIEW_PORT))
VIEW ?=
VIEW_PORT ?= 8765
VIEW_ARGS := $(if $(VIEW),--view --view-port $(VIEW_PORT))

.PHONY: help setup demo test test-fast bench train eval soak clean

help:
	@echo "make setup      create .venv with pinned ROS 2 kilted wheels, torch (CPU), MuJoCo; colcon build"
	@echo "make demo       run the main job in the embedded MuJoCo cell (VIEW=1: watch it live in Foxglove)"
	@echo "make test       run every test (unit, node, end-to-end); PYTEST_ARGS=... passes options"
	@echo "make test-fast  skip the slow end-to-end tests"
	@echo "make bench      run every script in bench/ (each prints one JSON object last)"
	@echo "make train      learn online in the MuJoCo cell"
	@echo "make eval       VPG's evaluation in the MuJoCo cell"
	@echo "make soak       500 primitives: node memory and action rate (docs/reliability.md)"

setup:
	@bash tools/bootstrap.sh

demo: setup
	@$(ENV) python tools/demo.py $(VIEW_ARGS)

test: setup
	@$(ENV) python -m pytest $(PYTEST_ARGS)

test-fast: setup
	@$(ENV) python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: setup
	@$(ENV) status=0; found=0; for script in bench/*.py; do \
	  [ -e "$$script" ] || continue; found=1; \
	  echo "== $$script"; python "$$script" || status=1; \
	done; \
	[ $$found = 1 ] || echo "bench: no benchmark scripts in bench/"; exit $$status

train: setup
	@$(ENV) python -m vpg_training.training_run --run-dir $(RUN) --actions $(ACTIONS) --seed $(SEED) --cells $(CELLS) $(VIEW_ARGS) $(TRAIN_ARGS)

eval: setup
	@$(ENV) python -m vpg_evaluation.evaluate --runs $(EVAL_RUNS) $(EVAL_ARGS)

soak: setup
	@$(ENV) python -m vpg_training.soak $(SOAK_ARGS)

clean:
	rm -rf build install log
