"""Upload a run directory to MLflow after the fact: a run whose server went away.

    python -m qtrain.tracking.sync <run dir> [--uri URI]

The run directory is the record (config, history, metrics, plots); the MLflow run
that began it (tagged with the directory) gets what it is missing and its status, or
a new run is made from it. The store is --uri, else the run's own tracking.mlflow.uri.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path

from omegaconf import OmegaConf

import qtrain  # noqa: F401 -- registers the resolvers the saved config uses
from qtrain.config.schema import plain_values
from qtrain.errors import DiskFull
from qtrain.tracking.mlflow_run import MlflowTracker
from qtrain.tracking.redact import redact

log = logging.getLogger("qtrain")


def sync(run_dir: Path, uri: str | None = None) -> str | None:
    """Send `run_dir` to MLflow; the run's id, or None if the store cannot be reached."""
    config = plain_values(OmegaConf.load(run_dir / ".hydra" / "config.yaml"))
    settings = config.get("tracking", {}).get("mlflow") or {}
    uri = uri or settings.get("uri")
    if not uri:
        raise SystemExit(f"{run_dir}: its config has no tracking.mlflow.uri; give one with --uri")
    experiment = settings.get("experiment") or f"qtrain-{config['dataset']['name']}"
    tracker = MlflowTracker(uri=uri, experiment=experiment, system_metrics=False)
    tracker.attach(run_dir)
    if tracker.run_id is None:
        tracker.begin(config, run_dir)
    for row in read_history(run_dir / "history.csv"):  # those the run has are left out
        tracker.log_epoch(row)
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        tracker.log_results(json.loads(metrics_file.read_text()), run_dir)
    # metrics.json is written when a run ends well; without it the run stopped early.
    tracker.end("FINISHED" if metrics_file.is_file() else "FAILED")
    return tracker.run_id if tracker.down_since is None else None


def read_history(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open() as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(text: str):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qtrain.tracking.sync", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run directory (outputs/<date>/<time>, multirun/.../<job>)")
    parser.add_argument("--uri", help="the MLflow tracking URI (default: the run's tracking.mlflow.uri)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not (args.run_dir / ".hydra" / "config.yaml").is_file():
        print(f"run_dir={args.run_dir}: not a qtrain run directory (no .hydra/config.yaml)", file=sys.stderr)
        return 2
    try:
        run_id = sync(args.run_dir, args.uri)
    except DiskFull as full:  # the artifact store's disk: one line, as a run says it
        print(full, file=sys.stderr)
        return 1
    if run_id is None:
        return 1
    log.info("synced %s to MLflow run %s at %s", args.run_dir, run_id, redact(args.uri or "its tracking URI"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
