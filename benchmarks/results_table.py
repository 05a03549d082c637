"""Where every benchmark's figures go: <name>.json (all of them) and <name>.md (the table)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch


def write_results(out: Path, name: str, rows: list[dict], columns: list[str], cells) -> None:
    """Write the rows with the machine they came from, and print the Markdown table;
    `cells(row)` gives a row's table cells in the order of `columns`."""
    out.mkdir(parents=True, exist_ok=True)
    machine = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
    machine["torch"] = torch.__version__
    (out / f"{name}.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    lines = ["| " + " | ".join(columns) + " |", "|---" + "|---:" * (len(columns) - 1) + "|"]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    table = "\n".join(lines)
    (out / f"{name}.md").write_text(table + "\n")
    print(table)
