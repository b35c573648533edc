# snnconvert: `make demo` installs and runs the built-in example; `make test` lints and runs the tests.
PY ?= python3
DEMO ?= demo-out
T ?= 50

.PHONY: install demo test test-fast lint format bench clean

install:
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e ".[dev]"

demo: install
	snnconvert example $(DEMO)
	snnconvert inspect $(DEMO)/model.onnx
	snnconvert calibrate $(DEMO)/model.onnx --data $(DEMO)/calib.npz --out $(DEMO)/calib.json
	snnconvert convert $(DEMO)/model.onnx --calibration $(DEMO)/calib.json --recipe mueller2021 --out $(DEMO)/snn
	snnconvert simulate $(DEMO)/snn --data $(DEMO)/test.npz --timesteps $(T) --out $(DEMO)/simulation.json --plot $(DEMO)/accuracy.png
	snnconvert energy-report $(DEMO)/snn --out $(DEMO)/energy.json --csv $(DEMO)/energy.csv --markdown $(DEMO)/energy.md --plot $(DEMO)/energy.png

lint:
	$(PY) -m ruff check snnconvert tests bench tools
	$(PY) -m ruff format --check snnconvert tests bench tools

format:
	$(PY) -m ruff format snnconvert tests bench tools
	$(PY) -m ruff check --fix snnconvert tests bench tools

# the suite runs on JOBS processes (pytest-xdist), one torch thread each
JOBS ?= 2

test: lint
	$(PY) -m pytest -q -n $(JOBS)

test-fast: lint
	$(PY) -m pytest -q -n $(JOBS) -m "not slow"

bench:
	$(PY) -m pip install --no-deps spikingjelly
	$(PY) -m pip install scipy tqdm loguru packaging requests
	$(PY) bench/run_all.py

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
