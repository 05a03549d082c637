"""Tensors made once per (dtype, device) from a compiled circuit's numpy constants."""

from __future__ import annotations

import torch


def cached(cache: dict, key, make):
    """`make()` once per key. torch.export and torch.compile run forward on fake tensors:
    what is made while they trace belongs to the trace, so it is made anew and not kept."""
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return make()
    if key not in cache:
        cache[key] = make()
    return cache[key]
