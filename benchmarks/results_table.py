"""Where every benchmark's figures go: <name>.json (all of them) and <name>.md (the table)
in --out, and the table of the docs/ page (docs/benchmarks.md, docs/noise.md) between `<!-- bench:<name> -->` and
`<!-- /bench:<name> -->`, headed by the date, the command and the machine (`make bench`
rewrites them all)."""

from __future__ import annotations

import datetime
import json
import platform
import sys
from pathlib import Path

import torch

DOCS = Path(__file__).resolve().parents[1] / "docs"


def duration(seconds: float) -> str:
    """A time for a table: milliseconds below one second."""
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


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
    rewrite_docs(name, table, machine)


def rewrite_docs(name: str, table: str, machine: dict) -> None:
    """This run's table in place of the docs' one, in the page of docs/ that has a place for it."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        if start not in text:
            continue
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        script = Path(sys.argv[0]).resolve().relative_to(DOCS.parent).as_posix()
        command = " ".join(["python", script, *sys.argv[1:]])
        where = f"{machine['cpu']}, {machine['threads']} torch threads, torch {machine['torch']}"
        header = f"Measured {datetime.date.today()} with `{command}` ({where}):"
        page.write_text(f"{before}{start}\n{header}\n\n{table}\n{end}{after}")
        print(f"rewrote the {name} table of {page}")
