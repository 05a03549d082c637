"""What an Optuna sweep adds around Hydra's Optuna sweeper: a sampler whose workers and
resumes explore new points, a storage created once, and the study's plots."""
