"""Hydra's sweep overrides as Optuna distributions, as Hydra's Optuna sweeper reads them:
`choice(...)` is categorical, `range(a, b, step=s)` a stepped int or float (Hydra's stop
is exclusive, Optuna's high inclusive), `interval(a, b)` a float or int, `tag(log,
interval(...))` on a log scale; anything else is a fixed value.

The plugin keeps this in its private `_impl` module, so qtrain's sweeper, which runs
its own launch loop (qtrain.sweep.sweeper), carries its own copy of the rules."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from math import ceil
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution


def search_space(arguments: list[str]) -> tuple[dict[str, BaseDistribution], dict[str, Any], list[str]]:
    """(searched keys' distributions, fixed keys' values, deletions `~key` kept as given)."""
    searched, fixed, deletions = {}, {}, []
    for override in OverridesParser.create().parse_overrides(arguments):
        if override.is_delete():
            deletions.append(override.input_line)
            continue
        value = distribution(override)
        if isinstance(value, BaseDistribution):
            searched[override.get_key_element()] = value
        else:
            fixed[override.get_key_element()] = value
    return searched, fixed, deletions


def distribution(override: Override) -> BaseDistribution | str:
    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    value = override.value()
    if override.is_choice_sweep():
        return CategoricalDistribution(_values(override))
    if override.is_range_sweep():
        return _range(override)
    if override.is_interval_sweep():
        low, high, log = value.start, value.end, "log" in value.tags
        if isinstance(low, int) and isinstance(high, int):
            return IntDistribution(low, high, log=log)
        return FloatDistribution(low, high, log=log)
    raise ValueError(f"{override.input_line}: not a sweep Optuna can search (choice, range or interval)")


def _values(override: Override) -> list:
    return list(override.sweep_iterator(transformer=Transformer.encode))


def _range(override: Override) -> BaseDistribution:
    sweep = override.value()
    if sweep.step == 0:
        raise ValueError(f"{override.input_line}: a range needs a nonzero step")
    if sweep.shuffle or sweep.transformers:
        return CategoricalDistribution(_values(override))
    values = sweep.range()
    if isinstance(values, range):
        if not values:
            raise ValueError(f"{override.input_line}: the range holds no value")
        low, high = sorted((values[0], values[-1]))
        return IntDistribution(low, high, step=abs(values.step))
    count = ceil((Fraction(values.stop) - Fraction(values.start)) / Fraction(values.step))
    if count <= 0:
        raise ValueError(f"{override.input_line}: the range holds no value")
    last = values.start + (count - 1) * values.step
    low, high, step = *sorted((float(values.start), float(last))), float(abs(values.step))
    exact = Decimal(str(low)) == min(values.start, last) and Decimal(str(high)) == max(values.start, last)
    if not (exact and Decimal(str(step)) == abs(values.step)):
        return CategoricalDistribution(_values(override))  # not exact in floats: the values themselves
    return FloatDistribution(low, high, step=step)


def suggest(trial, key: str, space: BaseDistribution) -> Any:
    """Optuna's public `suggest_*` call for a distribution."""
    if isinstance(space, CategoricalDistribution):
        return trial.suggest_categorical(key, space.choices)
    if isinstance(space, IntDistribution):
        return trial.suggest_int(key, space.low, space.high, step=space.step, log=space.log)
    return trial.suggest_float(key, space.low, space.high, step=space.step, log=space.log)


def grid_values(space: BaseDistribution) -> list:
    """A distribution's points, for Optuna's GridSampler (discrete distributions only)."""
    if isinstance(space, CategoricalDistribution):
        return list(space.choices)
    if isinstance(space, IntDistribution):
        return list(range(space.low, space.high + 1, space.step))
    if isinstance(space, FloatDistribution) and space.step is not None:
        count = round((space.high - space.low) / space.step) + 1
        return [space.low + i * space.step for i in range(count)]
    raise ValueError(f"a grid search needs discrete values; {space} is continuous: use choice(...) or range(...)")
