"""qtrain from Python (a notebook, a script): the experiments of the command line, through
Hydra's compose API, and the same run directory.

    import qtrain
    cfg = qtrain.compose(["experiment=fashion_mnist_hybrid_ensemble"])   # inspect, no run
    metrics = qtrain.train(["model=simple_cnn", "stages.train.epochs=3"])  # {"test/acc": ..., ...}
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from qtrain.config import compose


def train(overrides: Sequence[str] = (), run_dir: str | Path | None = None) -> dict[str, float]:
    """Run `python -m qtrain <overrides>` in this process and return its metrics (those of
    metrics.json). The run directory is `run_dir`, or the CLI's `outputs/<date>/<time>/`,
    with the same files: `.hydra/`, `qtrain.log`, checkpoints, metrics, plots. A mistake
    raises `qtrain.errors.ConfigError` naming the key."""
    from qtrain.run import run  # torch loads here, not on `import qtrain`

    cfg = compose(overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # what the CLI's run sees: choices, overrides
    try:
        run_dir = Path(run_dir or cfg.hydra.run.dir)
        hydra_cfg = cfg.hydra
        with open_dict(cfg):
            del cfg["hydra"]
        _write_hydra_record(run_dir / ".hydra", cfg, hydra_cfg, list(overrides))
        with _log_file(run_dir / f"{hydra_cfg.job.name}.log"):
            return run(cfg, run_dir)
    finally:
        HydraConfig.instance().cfg = None


def _write_hydra_record(folder: Path, cfg: DictConfig, hydra_cfg: DictConfig, overrides: list[str]) -> None:
    """config.yaml, hydra.yaml and overrides.yaml, as Hydra writes them for a CLI run."""
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder / "config.yaml")
    OmegaConf.save(OmegaConf.create({"hydra": hydra_cfg}), folder / "hydra.yaml")
    OmegaConf.save(OmegaConf.create(overrides), folder / "overrides.yaml")


@contextlib.contextmanager
def _log_file(path: Path):
    """The run's log file, as Hydra's job logging writes it for a CLI run."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logger = logging.getLogger("qtrain")
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
