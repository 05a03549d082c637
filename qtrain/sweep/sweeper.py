"""qtrain's Optuna sweeper: Hydra's, over the part of the search space the model has
(qtrain.sweep.space). `python -m qtrain` registers it with Hydra's plugins (register());
an entry point would make every Hydra app in the environment import qtrain."""

from __future__ import annotations

import logging

from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import DictConfig, OmegaConf

from qtrain.sweep.space import model_space

log = logging.getLogger("qtrain")


class QtrainOptunaSweeper(OptunaSweeper):
    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        space = model_space(config)
        left_out = [key for key in config.hydra.sweeper.params or {} if key not in space]
        if left_out:
            log.info(
                "model=%s has no %s: the search leaves them out",
                config.hydra.runtime.choices.model,
                ", ".join(left_out),
            )
        self.sweeper.params = OmegaConf.create(space)
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
