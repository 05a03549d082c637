"""The test functions of Hydra's Optuna sweeper's own tests (plugins/hydra_optuna_sweeper
in Hydra's repository: sphere, Binh and Korn, a custom search space), as one Hydra app
that sweeps with qtrain's sweeper: `python sphere_app.py --config-name=<conf> -m ...`."""

import sys

import hydra
from hydra.core.plugins import Plugins
from omegaconf import DictConfig
from optuna.trial import Trial

import qtrain
from qtrain.sweep.sweeper import QtrainOptunaSweeper


@hydra.main(config_path="sphere_conf", config_name="sphere", version_base=None)
def objective(cfg: DictConfig):
    if cfg.get("error", False):
        raise RuntimeError("cfg.error is True")
    if cfg.function == "binh_and_korn":  # two objectives
        return 4 * cfg.x**2 + 4 * cfg.y**2, (cfg.x - 5) ** 2 + (cfg.y - 5) ** 2
    return sum(cfg[key] ** 2 for key in ("w", "x", "y", "z") if isinstance(cfg.get(key), (int, float)))


def configure(cfg: DictConfig, trial: Trial) -> None:
    """The custom search space: z near x, and a new key w."""
    x = trial.params["x"]
    trial.suggest_float("z", x - cfg.max_z_difference_from_x, x + cfg.max_z_difference_from_x)
    trial.suggest_float("+w", 0.0, 1.0)  # +w: w is a new key


if __name__ == "__main__":
    Plugins.instance().register(QtrainOptunaSweeper)
    sys.argv.append(f"hydra.searchpath=[file://{qtrain.CONFIG_DIR}]")  # hydra/sweeper=qtrain_optuna
    objective()
