# qtrain: `make run` trains the default experiment, `make test` runs the suite.
# Both create .venv and install the project into it on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
ARGS ?=

.PHONY: install run test test-slow test-e2e test-all slurm-up slurm-down bench-sweep screenshots lint format bench clean mlflow-ui tensorboard optuna-dashboard sweep

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	touch $(INSTALLED)

install: $(INSTALLED)

run: $(INSTALLED)  ## train the default experiment (make run ARGS="model=resnet dataset.image_size=32")
	$(PY) -m qtrain $(ARGS)

test: $(INSTALLED)  ## the fast tier, one worker per core (pytest-xdist); add ARGS="-n 0" for one process
	$(PY) -m pytest -n auto --dist worksteal -m "not slow and not e2e" $(ARGS)

test-slow: $(INSTALLED)  ## the slow tier: accuracy runs, torchrun, sweeps, torch.compile
	$(PY) -m pytest -n auto --dist worksteal -m slow $(ARGS)

test-e2e: $(INSTALLED)  ## real servers and a browser: the MLflow UI in headless Chromium, Optuna on PostgreSQL, sweeps on SLURM (make slurm-up first)
	$(PY) -m pytest -n auto --dist worksteal -m e2e $(ARGS)

slurm-up:  ## start a one-node SLURM cluster here, with accounting (Debian's slurm-wlm, slurmdbd, munge, mariadb-server; installed where missing; root)
	slurm/cluster.sh up

slurm-down:  ## stop it
	slurm/cluster.sh down

test-all: $(INSTALLED)  ## every tier
	$(PY) -m pytest -n auto --dist worksteal $(ARGS)

screenshots: $(INSTALLED)  ## retake the README's MLflow pictures (docs/images/) with the browser test
	QTRAIN_SCREENSHOTS=docs/images $(PY) -m pytest -m e2e tests/tracking/test_e2e_mlflow_ui.py $(ARGS)

lint: $(INSTALLED)
	$(VENV)/bin/ruff check qtrain tests benchmarks
	$(VENV)/bin/ruff format --check qtrain tests benchmarks

format: $(INSTALLED)
	$(VENV)/bin/ruff check --fix qtrain tests benchmarks
	$(VENV)/bin/ruff format qtrain tests benchmarks

bench: $(INSTALLED)  ## the first run, training throughput, input pipeline, quantum head per backend, hybrid step cost, peer simulators ([bench] extra), the noisy head; rewrites the tables of docs/benchmarks.md (and benchmarks/results/)
	$(PY) benchmarks/first_run.py
	$(PY) benchmarks/training_throughput.py
	$(PY) benchmarks/input_pipeline.py
	$(PY) benchmarks/quantum_head.py
	$(PY) benchmarks/hybrid_step.py
	$(PY) benchmarks/peer_simulators.py
	$(PY) benchmarks/noisy_head.py

bench-sweep: $(INSTALLED)  ## Hydra's Optuna sweeper against qtrain's (async, median pruner) on one search, seeds 0-2, then the 100-trial soak (about 20 minutes on 2 cores); rewrites docs/sweeps.md's tables
	$(PY) benchmarks/sweep_async.py
	$(PY) benchmarks/sweep_soak.py

sweep: $(INSTALLED)  ## a small example Optuna sweep: 4 short trials of cnn_quantum, then see them in make mlflow-ui
	$(PY) -m qtrain -m hparams_search=optuna model=cnn_quantum stages.train.epochs=3 hydra.sweeper.n_trials=4 $(ARGS)

mlflow-ui: $(INSTALLED)  ## browse runs at http://127.0.0.1:5000 (the store runs log to: MLFLOW_TRACKING_URI or ./mlflow.db)
	@echo "Runs tables: open the links qtrain prints, or choose 'Model training' at the top left of the UI"
	$(VENV)/bin/mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db} --host 127.0.0.1 --port 5000

tensorboard: $(INSTALLED)  ## browse tracking=tensorboard runs (outputs/ and multirun/) at http://127.0.0.1:6006
	$(VENV)/bin/tensorboard --logdir_spec outputs:outputs,multirun:multirun --host 127.0.0.1 --port 6006

STUDY_STORAGE ?= sqlite:///optuna.db
optuna-dashboard: $(INSTALLED)  ## browse Optuna studies at http://127.0.0.1:8080 (STUDY_STORAGE=postgresql://... for a shared one)
	$(VENV)/bin/optuna-dashboard $(STUDY_STORAGE) --host 127.0.0.1 --port 8080

clean:  ## remove run outputs and caches (not .venv, not data/)
	rm -rf outputs multirun .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path "./$(VENV)/*" -exec rm -rf {} +
