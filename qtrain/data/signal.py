"""Synthetic signal extraction: a noisy mix of sinusoids in, one chosen component out.

Each sample holds every frequency of `frequencies` with its own random amplitude and
phase, summed and with Gaussian noise added; a one-hot condition picks the component
to extract. Inputs are (time_steps, 1 + len(frequencies)) per sample, the mixed value
and the condition at every step; targets are (time_steps,), the clean component.

A dataset is generated once per set of generator settings and saved to
`<root>/signal-<hash>.pt`; every later run (every job of a sweep) reloads that file.
Splits are by sample, seeded by `split_seed`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch

from qtrain.data.batches import TensorSplits
from qtrain.errors import ConfigError
from qtrain.files import load_tagged, save_tagged

log = logging.getLogger("qtrain")

FORMAT = "qtrain-signal/1"


def generate(
    num_samples: int,
    time_steps: int,
    sample_rate: float,
    frequencies: list[float],
    amplitude: tuple[float, float],
    noise_std: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) as float32 arrays, a function of the arguments alone."""
    rng = np.random.default_rng(seed)
    k = len(frequencies)
    t = np.arange(time_steps) / sample_rate
    amplitudes = rng.uniform(*amplitude, size=(num_samples, k, 1))
    phases = rng.uniform(0, 2 * np.pi, size=(num_samples, k, 1))
    omega = 2 * np.pi * np.asarray(frequencies, dtype=np.float64)[None, :, None]
    components = amplitudes * np.sin(omega * t + phases)  # (samples, k, steps)
    mixed = components.sum(axis=1) + rng.normal(0.0, noise_std, size=(num_samples, time_steps))
    chosen = rng.integers(0, k, size=num_samples)
    condition = np.eye(k)[chosen]  # (samples, k)
    inputs = np.concatenate([mixed[:, :, None], np.repeat(condition[:, None, :], time_steps, axis=1)], axis=2)
    targets = components[np.arange(num_samples), chosen]
    return inputs.astype(np.float32), targets.astype(np.float32)


class SignalData(TensorSplits):
    def __init__(
        self,
        name: str,
        root: str,
        num_samples: int,
        time_steps: int,
        sample_rate: float,
        frequencies: list[float],
        amplitude: list[float],
        noise_std: float,
        generator_seed: int,
        batch_size: int,
        split_seed: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
    ):
        self.name, self.root = name, root
        self.settings = {
            "num_samples": int(num_samples),
            "time_steps": int(time_steps),
            "sample_rate": float(sample_rate),
            "frequencies": [float(f) for f in frequencies],
            "amplitude": [float(a) for a in amplitude],
            "noise_std": float(noise_std),
            "seed": int(generator_seed),
        }
        self.batch_size, self.split_seed = batch_size, split_seed
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.splits, self.class_names = {}, []

    @property
    def path(self) -> Path:
        digest = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:12]
        return Path(self.root).expanduser() / f"signal-{digest}.pt"

    def _check(self) -> None:
        s = self.settings
        for key in ("num_samples", "time_steps"):
            if s[key] < 1:
                raise ConfigError(f"dataset.{key}", s[key], "must be a positive integer")
        if not s["frequencies"]:
            raise ConfigError("dataset.frequencies", s["frequencies"], "list at least one frequency in Hz")
        nyquist = s["sample_rate"] / 2
        if any(not 0 < f < nyquist for f in s["frequencies"]):
            raise ConfigError(
                "dataset.frequencies",
                s["frequencies"],
                f"each must be in (0, {nyquist:g}) Hz: below half the sample_rate",
            )
        low, high = s["amplitude"] if len(s["amplitude"]) == 2 else (None, None)
        if low is None or not 0 <= low <= high:
            raise ConfigError("dataset.amplitude", s["amplitude"], "give [low, high] with 0 <= low <= high")
        if s["noise_std"] < 0:
            raise ConfigError("dataset.noise_std", s["noise_std"], "must be >= 0")

    def input_info(self) -> dict:
        """(time steps, 1 + conditions): the mixed value and the one-hot condition per step."""
        return {"kind": "signal", "shape": [self.settings["time_steps"], 1 + len(self.settings["frequencies"])]}

    def load_or_generate(self) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.path
        if path.is_file():
            try:
                saved = load_tagged(path, FORMAT, "signal dataset")
                if saved["settings"] == self.settings:
                    return saved["inputs"], saved["targets"]
                log.warning("%s holds other generator settings; generating it again", path)
            except ValueError as why:  # damaged or foreign: made anew
                log.warning("%s: %s; generating it again", path, why)
        inputs, targets = (torch.from_numpy(a) for a in generate(**self.settings))
        save_tagged(path, FORMAT, {"settings": self.settings, "inputs": inputs, "targets": targets})
        log.info("signal: generated %d samples, saved to %s", len(inputs), path)
        return inputs, targets

    def setup(self, device: torch.device | str = "cpu") -> None:
        self._check()
        inputs, targets = self.load_or_generate()
        order = torch.from_numpy(np.random.default_rng(self.split_seed).permutation(len(inputs)))
        n_test = max(1, round(self.test_fraction * len(inputs)))
        n_val = max(1, round(self.val_fraction * len(inputs)))
        parts = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
        if len(parts["train"]) == 0:
            raise ConfigError("dataset.num_samples", len(inputs), "too few samples to leave any for training")
        self.splits = {split: (inputs[i].to(device), targets[i].to(device)) for split, i in parts.items()}
