"""What a user sees in the MLflow UI, checked in a real browser (pytest -m e2e): a
2-trial Optuna sweep and a single run logged over HTTP to `mlflow server`, then the
runs table and a child run's page in headless Chromium (Debian's, through playwright;
no browser download). QTRAIN_SCREENSHOTS=docs/images saves the README's pictures."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient
from servers import mlflow_server

import qtrain

ROOT = Path(qtrain.CONFIG_DIR).parent  # the repository

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("QTRAIN_CHROMIUM", "/usr/bin/chromium")
TRAIN = (
    "model=simple_cnn",
    "debug=fast",
    "stages.train.epochs=4",
    "trainer.limit_epochs=4",
    "trainer.limit_train_batches=20",
)


def qtrain_cli(run_cli, *args: str, cwd: Path, uri: str) -> str:
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1"}
    result = run_cli(*args, *TRAIN, "tracking=mlflow", cwd=cwd, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.fixture
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; or set QTRAIN_CHROMIUM)")
    playwright = pytest.importorskip("playwright.sync_api", reason="the playwright package (pip install -e '.[dev]')")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def screenshot(page, name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=path)
    folder = os.environ.get("QTRAIN_SCREENSHOTS")
    if folder:
        shutil.copy(path, ROOT / folder / path.name)


def close_assistant(page) -> None:
    """MLflow 3.17 opens an assistant panel over a third of the page."""
    close = page.get_by_role("button", name="Close")
    if close.count():
        close.first.click()


def test_the_mlflow_ui_shows_the_sweep_its_children_and_a_run(tmp_path, browser, run_cli):
    with mlflow_server(tmp_path) as server:
        uri = server.uri
        sweep = qtrain_cli(
            run_cli,
            "-m",
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=2",
            f"hydra.sweeper.storage=sqlite:///{tmp_path}/optuna.db",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            cwd=tmp_path,
            uri=uri,
        )
        qtrain_cli(run_cli, f"hydra.run.dir={tmp_path / 'single'}", cwd=tmp_path, uri=uri)
        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("qtrain-digits").experiment_id])
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        (parent,) = [r for r in runs if r.data.tags.get("qtrain.role") == "sweep"]
        (single,) = [r for r in runs if r not in children and r is not parent]
        assert len(children) == 2
        assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["optuna"], sweep[-3000:]

        page = browser.new_page(viewport={"width": 1600, "height": 900})
        # The link the sweep printed opens the experiment on its runs table, not GenAI's overview.
        (link,) = re.findall(r"its jobs nested under it: (\S+)", sweep)
        page.goto(link)
        page.wait_for_selector(f"text={parent.info.run_name}", timeout=60_000)
        assert "/runs" in page.url and "overview" not in page.url
        close_assistant(page)
        page.get_by_role("button", name="Columns").click()
        page.get_by_placeholder("Search columns").fill("val/acc_best")
        page.get_by_text("val/acc_best", exact=True).click()
        page.keyboard.press("Escape")
        page.locator("[role=row]", has_text=parent.info.run_name).locator("button").first.click()  # expand
        for child in children:
            page.wait_for_selector(f"text={child.info.run_name}", timeout=10_000)
        rows = page.locator("[role=row]").all_inner_texts()
        names = [r.info.run_name for r in (single, parent, *children)]
        assert all(any(name in row for row in rows) for name in names), rows
        assert "val/acc_best" in page.locator("[role=columnheader]").all_inner_texts()
        # Children are listed under their parent: after it, before the next top-level run.
        order = [next(i for i, row in enumerate(rows) if name in row) for name in names]
        assert order[1] < min(order[2:]), rows
        screenshot(page, "mlflow-runs", tmp_path)

        # A child's page, from the link its job printed.
        child = children[0]
        (link,) = re.findall(rf"MLflow run {re.escape(child.info.run_name)}: (\S+)", sweep)
        page.goto(link)
        page.wait_for_selector("text=Parameters", timeout=30_000)
        close_assistant(page)
        assert page.get_by_text("Evaluation runs").count() == 0  # the model-training pages, not GenAI's
        page.get_by_placeholder("Search parameters").fill("optimizer")
        page.wait_for_selector(f"text={child.data.params['optimizer.lr']}", timeout=10_000)
        page.get_by_text(re.compile(r"^Parameters \(")).evaluate("heading => heading.scrollIntoView({block: 'start'})")
        screenshot(page, "mlflow-run", tmp_path)
        page.get_by_role("tab", name="Model metrics").click()
        page.get_by_placeholder("Search metric charts").fill("val/")
        page.wait_for_selector("text=acc_best", timeout=30_000)
        assert page.locator("canvas, svg.main-svg").count() > 0  # the charts are drawn
        page.wait_for_timeout(1500)
        screenshot(page, "mlflow-metrics", tmp_path)
        page.get_by_role("tab", name="Artifacts").click()
        page.get_by_text("plots", exact=True).click()
        page.get_by_text("confusion_matrix.png", exact=True).click()
        page.wait_for_selector("text=plots/confusion_matrix.png", timeout=30_000)
        page.wait_for_selector("img[src^='blob:']", timeout=30_000)  # the picture itself, fetched from the server
        screenshot(page, "mlflow-artifacts", tmp_path)
        page.close()
        # The parent run holds Optuna's pictures of the search (a new page: a change of the
        # link's #fragment alone keeps the artifact tree of the run shown before).
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        experiment = parent.info.experiment_id
        page.goto(f"{uri}/#/experiments/{experiment}/runs/{parent.info.run_id}/artifacts?workflowType=machine_learning")
        page.wait_for_selector("text=optuna", timeout=30_000)
        close_assistant(page)
        page.get_by_text("optuna", exact=True).click()
        page.get_by_text("optimization_history.png", exact=True).click()
        page.wait_for_selector("text=optuna/optimization_history.png", timeout=30_000)
        page.wait_for_selector("img[src^='blob:']", timeout=30_000)
        assert page.get_by_text("param_importances.html", exact=True).count() == 1
        screenshot(page, "mlflow-sweep-plots", tmp_path)
        page.close()
