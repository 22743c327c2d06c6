# Hand Capture. README: `make demo` sets up and runs the main job; `make test` runs every test.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.handcap-setup

.PHONY: setup demo test bench build clean

setup: $(STAMP)

# One pip resolution for everything (bpy pins numpy<2); mediapipe without its heavy deps.
$(STAMP): requirements.txt requirements-nodeps.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	$(PY) -c "import numpy, torch, cv2, mediapipe, smplx, bpy; assert numpy.__version__ < '2'"
	@touch $(STAMP)

demo: setup
	$(PY) -m core demo

test: setup
	$(PY) -m pytest -q tests

bench: setup
	$(PY) -m benchmarks

build: setup
	$(PY) build.py

clean:
	rm -rf $(VENV) core/assets build dist .pytest_cache
