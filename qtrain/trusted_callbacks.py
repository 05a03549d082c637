"""Hydra builds `hydra.callbacks` before any of qtrain runs, and refuses a `_target_`
outside its whitelist with a 30-line traceback. This callback is listed first and is
handed their `_target_` keys unbuilt (`${callback_targets:}`, `_recursive_: false`): it
refuses an untrusted one in one line (qtrain.config_checks.check_targets), before Hydra
would build it."""

from __future__ import annotations

from hydra.experimental.callback import Callback

from qtrain.config_checks import check_targets
from qtrain.errors import ConfigError, refuse_in_callback


class TrustedCallbacks(Callback):
    def __init__(self, targets: dict):
        try:
            check_targets(targets, "hydra.callbacks.")
        except ConfigError as error:
            refuse_in_callback(error)
