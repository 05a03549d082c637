"""TPE seeded per trial, so that a sweep is reproducible and yet every worker on a
shared study, and every resume of it, proposes new points.

Hydra's Optuna sweeper gives each process a sampler seeded with `seed`: two workers
(or a resumed study) would draw the same random start-up points and, from the same
history, the same TPE candidates. Here each trial's draws are seeded by
(seed, trial number); the storage hands out each trial number once.
"""

from __future__ import annotations

from optuna.samplers import TPESampler


class TrialSeededTPESampler(TPESampler):
    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.seed = seed

    def before_trial(self, study, trial) -> None:
        if self.seed is not None:
            # TPESampler only offers an unseeded reseed_rng(); both of its generators
            # (TPE's candidates and the random start-up sampler's) take this trial's seed.
            for state in (self._rng, self._random_sampler._rng):
                state.rng.seed([self.seed, trial.number])
        super().before_trial(study, trial)
