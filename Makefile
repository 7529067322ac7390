# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# the demo trains a fixed number of steps, so a busy and an idle machine write the same grid; one torch
# thread: a second one gains 3 % on an idle 2-core machine and costs 2.4x beside one busy process
# (benchmarks/demo_threads.py: 0.222 vs 0.215 s/step idle, 0.266 vs 0.641 busy). 2000 steps ~ 7.5 min.
# Learning rates x2 for so short a run: at 2000 steps 77.6 % mean attribute accuracy vs 74.5 % with the
# preset's (benchmarks/RESULTS.md, "Longer runs: shape needs steps").
DEMO_STEPS   ?= 2000
DEMO_THREADS ?= 1
DEMO_ARGS    ?= train.lr_g=0.0004 train.lr_d=0.0008
DEMO_CAPTIONS = "a red circle" "a blue square" "a green triangle" "a yellow star" \
	"a large purple circle on the left" "a small orange square at the top"

.PHONY: setup browser demo test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# the CPU wheel of torch 2.13.0 first: an unpinned torch would pull several GB of CUDA packages
	$(PIP) install --quiet "torch==2.13.0"
	# the optional extras too, so CI tests the Gradio app, the report and the trackers
	$(PIP) install --quiet -e ".[test,demo,report,wandb,tensorboard]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	rm -rf runs/demo-dfgan-shapes
	@echo "training $(DEMO_STEPS) steps with $(DEMO_THREADS) torch thread(s)"
	OMP_NUM_THREADS=$(DEMO_THREADS) $(VENV)/bin/t2igan train dfgan-shapes train.max_steps=$(DEMO_STEPS) $(DEMO_ARGS) \
		--run-dir runs/demo-dfgan-shapes
	$(VENV)/bin/t2igan sample runs/demo-dfgan-shapes $(DEMO_CAPTIONS) --n 8 --seed 0 -o runs/demo-dfgan-shapes/demo_grid.png
	$(VENV)/bin/t2igan sample shapes-dfgan $(DEMO_CAPTIONS) --n 8 --seed 0 -o runs/demo-dfgan-shapes/bundled_grid.png
	@echo "demo grid: runs/demo-dfgan-shapes/demo_grid.png (this run, $(DEMO_STEPS) steps)"
	@echo "bundled:   runs/demo-dfgan-shapes/bundled_grid.png (the bundled shapes-dfgan, a longer run)"

# headless Chromium + its driver from Debian, for the web demo's browser test
browser:
	@if [ ! -x /usr/bin/chromedriver ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

test: setup browser
	$(PY) -m pytest tests

# speed suite (CPU: ~12 min on 2 busy cores, held under 15): tables + benchmarks/results/*.json; on a GPU run
# `python benchmarks/run_speed.py --device cuda` for the official batch sizes
bench: setup
	OMP_NUM_THREADS=1 $(PY) benchmarks/run_speed.py --quick

clean:
	rm -rf $(VENV) runs .pytest_cache
