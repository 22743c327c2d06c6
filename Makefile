# Hand Capture. README: `make demo` sets up and runs the main job; `make test` runs every test.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.handcap-setup

.PHONY: setup demo test bench build clean

setup: $(STAMP)

# One pip resolution for everything (bpy pins numpy<2), with the optional Ray engine (requirements-ray.txt
# includes requirements.txt; plain ray adds ~15 s); mediapipe without its heavy deps.
$(STAMP): requirements.txt requirements-ray.txt requirements-nodeps.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-ray.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	$(PY) -c "import numpy, torch, cv2, mediapipe, smplx, bpy; assert numpy.__version__ < '2'"
	@touch $(STAMP)

demo: setup
	$(PY) -m core demo

# The core's tests in .venv, then tests/blender in a bpy-only interpreter per supported Blender version
# (4.5 LTS, 5.0.1, 5.2.3 LTS; venvs in .venvs/, reused by stamp) with the worker in .venv.
test: setup
	$(PY) -m pytest -q tests --ignore=tests/blender --ignore=tests/gpu
	$(PY) tests/blender_matrix.py

bench: setup
	$(PY) -m benchmarks

build: setup
	$(PY) build.py

clean:
	rm -rf $(VENV) .venvs core/hand/assets build dist .pytest_cache
