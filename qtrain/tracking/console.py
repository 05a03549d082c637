"""What a run shows on the terminal: the config tree (once per multirun, from the
launcher; a line per job), a bar per epoch, a summary table."""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.syntax import Syntax
from rich.table import Table
from rich.tree import Tree

from qtrain.config.schema import plain_values
from qtrain.tracking.redact import redact

log = logging.getLogger("qtrain")
console = Console(stderr=True)

GROUP_ORDER = ("dataset", "model", "optimizer", "scheduler", "stages", "trainer", "hardware")


def print_config_tree(config: dict) -> None:
    """The config's plain values, one branch per group, groups of the experiment first."""
    tree = Tree("[bold]config[/bold]")
    keys = [k for k in GROUP_ORDER if k in config] + [k for k in config if k not in GROUP_ORDER]
    for key in keys:
        value = config[key]
        if isinstance(value, dict):
            branch = tree.add(f"[bold cyan]{key}[/bold cyan]")
            text = redact(OmegaConf.to_yaml(value).rstrip())
            branch.add(Syntax(text, "yaml", theme="ansi_dark"))
        else:
            tree.add(f"[bold cyan]{key}[/bold cyan]: {redact(str(value))}")
    console.print(tree)


def announce(config: dict) -> None:
    """A run prints its config tree; a multirun's job, one line (the launcher printed the tree)."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        hydra_cfg = HydraConfig.get()
        log.info("job %s: %s", hydra_cfg.job.num, redact(" ".join(hydra_cfg.overrides.task)) or "(no overrides)")
    else:
        print_config_tree(config)


class ConfigTreeCallback(Callback):
    """Prints the multirun's config once, in the launcher, before its jobs start."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        job_config = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
        print_config_tree(plain_values(job_config))


@contextlib.contextmanager
def epoch_bar(description: str, total: int, enabled: bool):
    """A transient progress bar for one epoch; yields `update(done, text)`."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda done, text: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[text]}"),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(description, total=total, text="")
        yield lambda done, text: progress.update(task, completed=done, text=text)


def print_summary(metrics: dict[str, float], stages: list[dict]) -> None:
    """The results table, on standard output (the log and the bars go to standard error)."""
    table = Table(title="qtrain results", show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4f}" if isinstance(value, float) else str(value))
    for stage in stages:
        table.add_row(
            f"stage {stage['name']}", f"{stage['epochs']} epochs, best {stage['best']:.4f}, {stage['wall_time_s']:.1f}s"
        )
    Console().print(table)


def bar_text(progress, score: str) -> str:
    """An epoch bar's text: running loss and score, throughput (progress: EpochProgress)."""
    metrics = progress.metrics("train", score)
    return (
        f"loss {metrics['train/loss']:.4f}  {score} {metrics[f'train/{score}']:.3f}  "
        f"{progress.samples_per_s:,.0f} samples/s"
    )


def epoch_line(row: dict, shown: tuple[str, ...], improved: bool) -> str:
    """An epoch's log line: the `shown` metrics of its history row; * when it improved."""
    metrics = "  ".join(f"{name} {row[name]:.4f}" for name in dict.fromkeys(shown))
    star = "  *" if improved else ""
    return f"{row['stage']} epoch {row['epoch']}  {metrics}  lr {row['lr']:.2e}  {row['samples_per_s']:.0f} samples/s{star}"
