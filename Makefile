# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
DEMO_MINUTES ?= 7

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
	$(VENV)/bin/t2igan train dfgan-shapes train.time_limit_min=$(DEMO_MINUTES) --run-dir runs/demo-dfgan-shapes
	$(VENV)/bin/t2igan sample runs/demo-dfgan-shapes \
		"a red circle" "a blue square" "a green triangle" "a yellow star" \
		"a large purple circle on the left" "a small orange square at the top" \
		--n 8 --seed 0 -o runs/demo-dfgan-shapes/demo_grid.png
	@echo "demo grid: runs/demo-dfgan-shapes/demo_grid.png"

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
