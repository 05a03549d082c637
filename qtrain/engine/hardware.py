"""The `hardware` group made real: device, mixed precision, determinism, compile."""

from __future__ import annotations

import contextlib
import functools
import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from qtrain.errors import ConfigError

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str, local_rank: int = 0, key: str = "hardware.device") -> torch.device:
    """The device `hardware.device` (or the config `key`) names; `auto` and `cuda` mean
    this process's GPU (`local_rank`: one GPU per process under torchrun)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(key, name, "use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        fallback = "hardware=cpu or hardware=auto" if key == "hardware.device" else f"{key}=cpu or {key}=auto"
        raise ConfigError(key, name, f"torch sees no CUDA GPU here; use {fallback}")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(key, name, f"only {torch.cuda.device_count()} GPU(s) visible")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(key, name, "use auto, cpu, cuda or cuda:N")
    return torch.device("cuda", local_rank) if device.type == "cuda" and device.index is None else device


def configure_backends(deterministic: bool, cudnn_benchmark: bool, tf32: bool) -> None:
    """Determinism, cuDNN autotuning, and TF32 tensor cores for float32 matmuls and
    convolutions (Ampere and newer; a 10-bit mantissa, ~2-8x faster)."""
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = cudnn_benchmark and not deterministic


def resolve_amp(device: torch.device, amp: str | None) -> str | None:
    """`auto`: bf16 on GPUs that support it, fp16 (with loss scaling) on older ones,
    none on the CPU, where autocast rarely pays."""
    if amp != "auto":
        return amp
    if device.type != "cuda":
        return None
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def autocast_factory(device: torch.device, amp: str | None):
    """A zero-argument context-manager factory: autocast to `amp`'s dtype, or nothing."""
    if amp is None:
        return contextlib.nullcontext
    if device.type == "cpu" and amp == "fp16":
        raise ConfigError("hardware.amp", amp, "fp16 autocast needs CUDA; use bf16 or null on the CPU")
    return functools.partial(torch.autocast, device_type=device.type, dtype=AMP_DTYPES[amp])


def grad_scaler(device: torch.device, amp: str | None) -> torch.amp.GradScaler:
    """Loss scaling is needed (and enabled) only for fp16; elsewhere the scaler is a no-op."""
    return torch.amp.GradScaler(device.type, enabled=amp == "fp16")


def maybe_compile(model: nn.Module, enabled: bool) -> nn.Module:
    return torch.compile(model) if enabled else model


def memory_format(model: nn.Module, channels_last: bool) -> nn.Module:
    """NHWC weights (`channels_last`): faster convolutions on tensor cores, especially
    under AMP; each convolution then also produces NHWC activations."""
    return model.to(memory_format=torch.channels_last) if channels_last else model


def step_profiler(directory: Path, enabled: bool, steps: int) -> torch.profiler.profile | None:
    """If `enabled`, a torch.profiler over `steps` optimizer steps after one warm-up
    step; when they are done it writes `trace.json` (chrome://tracing, Perfetto) and
    `ops.txt` (the costliest ops) to `directory`. The caller calls `.step()` per step."""
    if not enabled:
        return None

    def write(profile: torch.profiler.profile) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        profile.export_chrome_trace(str(directory / "trace.json"))
        table = profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=30)
        (directory / "ops.txt").write_text(table + "\n")

    return torch.profiler.profile(
        schedule=torch.profiler.schedule(wait=0, warmup=1, active=steps, repeat=1),
        on_trace_ready=write,
        record_shapes=True,
    )
