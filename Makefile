# Two commands a fresh clone needs: `make demo` (the main job) and `make test` (everything CI runs).
# Both create .venv on first use. On this project's machines pip takes torch 2.14.1 / torchvision
# 0.29.1 from local disk; elsewhere pyproject's loose floors give current releases.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
DEMO_DIR ?= demo-project

.PHONY: demo test bench clean

$(VENV)/.installed-dev: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PINS) || $(PIP) install -q torch torchvision
	$(PIP) install -q -e '.[dev]'
	touch $@

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PINS) || $(PIP) install -q torch torchvision
	$(PIP) install -q -e '.[torch]' tqdm matplotlib onnx onnxruntime onnxscript
	touch $@

# the main job: a recommendation, then a project scaffolded for the bundled digits demo, trained.
# --epochs 15 keeps the demo to about a minute on 2 cores (the recommended schedule is in config.yaml).
# It trains into the project's default runs/train, so the generated README's commands (python evaluate.py,
# python predict.py ..., python export.py: onnx/onnxruntime/onnxscript are installed above) work as written;
# --overwrite lets a second `make demo` start that run over (train.py refuses to replace a run unasked).
demo: $(VENV)/.installed
	$(VENV)/bin/archadvisor recommend --task classification --images 8000 --target jetson
	$(VENV)/bin/archadvisor scaffold --task classification --images 1437 --classes 10 --image-size 32 \
		--compute cpu --target cloud-cpu --no-pretrained --no-hflip --name digits_demo --out $(DEMO_DIR) --force
	cd $(DEMO_DIR) && ../$(PY) train.py --epochs 15 --overwrite
	@$(PY) -c "import json; s = json.load(open('$(DEMO_DIR)/runs/train/summary.json')); print(f\"digits demo: best val accuracy {s['best_val_acc1']:.2f}% after {s['epochs_run']} epochs, {s['wall_seconds']:.0f} s\")"

test: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check --no-cache .
	$(VENV)/bin/ruff format --no-cache --check archadvisor tests bench templates
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadgroup -m "not bench" --durations=25

bench: $(VENV)/.installed-dev
	$(PY) bench/cli_latency.py
	@for b in bench/profile_families.py bench/train_time_to_accuracy.py bench/train_loop_overhead.py; do \
		if [ -f $$b ]; then $(PY) $$b; fi; done

clean:
	rm -rf $(VENV) $(DEMO_DIR) build dist *.egg-info .pytest_cache .ruff_cache
