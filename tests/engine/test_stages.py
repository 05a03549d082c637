"""Staged training of the hybrid ensemble: what each stage trains, masks and reports."""

from __future__ import annotations

import json

import pytest
import torch
from hydra.utils import execution_whitelist, instantiate

from qtrain import TRUSTED_TARGETS
from qtrain.config import describe
from qtrain.engine.checkpoint import load_checkpoint
from qtrain.engine.stages import plan_stages
from qtrain.errors import ConfigError, TrainingInterrupted

STAGED = [
    "model=hybrid_ensemble",
    "stages=classical_quantum_ensemble",
    "hardware=cpu",
    "trainer.progress=false",
    "trainer.limit_train_batches=3",
    "trainer.limit_eval_batches=2",
    "stages.classical.epochs=1",
    "stages.quantum.epochs=2",
    "stages.ensemble.epochs=1",
]


def build(model_config):
    with execution_whitelist(TRUSTED_TARGETS):
        return instantiate(model_config)


def stage_weights(run_dir, stage: str) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / f"stage_{stage}_best.pt")["model"]


def changed(before: dict, after: dict, prefix: str) -> list[bool]:
    return [not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix)]


def test_each_stage_changes_only_what_it_trains(tmp_path, run_config):
    metrics = run_config(tmp_path, *STAGED)
    classical, quantum, ensemble = (stage_weights(tmp_path, s) for s in ("classical", "quantum", "ensemble"))
    # quantum stage: encoder, compression and classical heads bitwise unchanged (batch-norm statistics too)
    for frozen in ("encoder.", "compression.", "heads.classical_a.", "heads.classical_b.", "ensemble."):
        assert not any(changed(classical, quantum, frozen)), frozen
    assert all(changed(classical, quantum, "heads.quantum.quantum.weights"))
    # ensemble stage: only the ensemble's weights move
    assert not any(changed(quantum, ensemble, "encoder.") + changed(quantum, ensemble, "heads."))
    assert all(changed(quantum, ensemble, "ensemble."))
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert [s["name"] for s in written["stages"]] == ["classical", "quantum", "ensemble"]
    assert [s["epochs"] for s in written["stages"]] == [1, 2, 1]
    assert {"test/acc", "test/acc_classical_a", "test/acc_classical_b", "test/acc_quantum"} <= metrics.keys()
    history = (tmp_path / "history.csv").read_text().splitlines()
    header = history[0].split(",")
    assert {"val/acc_quantum", "ensemble/quantum", "ensemble/classical_a"} <= set(header)
    first = dict(zip(header, history[1].split(",")))
    assert float(first["ensemble/quantum"]) == 0.0  # masked in the classical stage
    assert float(first["ensemble/classical_a"]) == pytest.approx(0.5)


def test_a_head_no_stage_trains_is_left_out_of_the_metrics(tmp_path, run_config, read_history):
    twin = [*STAGED, "stages.quantum=null", "stages.ensemble.active_heads=[classical_a,classical_b]"]
    metrics = run_config(tmp_path / "twin", *twin)
    assert {"test/acc", "test/acc_classical_a", "test/acc_classical_b"} <= metrics.keys()
    assert not [key for key in metrics if key.endswith("_quantum")]  # its untouched head scores no result
    assert "val/acc_quantum" not in read_history(tmp_path / "twin")[0]
    # Weights from another run (init_from) may have trained any head: each is scored.
    best = tmp_path / "twin" / "checkpoints" / "best.pt"
    tuned = run_config(tmp_path / "tuned", *twin, f"init_from={best}")
    assert "test/acc_quantum" in tuned


def test_a_masked_head_contributes_nothing(make_config):
    model = build(make_config("model=hybrid_ensemble").model).eval()
    model.active_heads = ["classical_a", "classical_b"]
    x = torch.randn(4, 1, 16, 16)
    before = model(x)["ensemble"]
    with torch.no_grad():
        model.heads.quantum.quantum.weights.add_(1.0)
        model.heads.quantum.compress.weight.mul_(-3.0)
    after = model(x)
    assert torch.equal(before, after["ensemble"])
    weights = model.ensemble.weights(model.active_heads)
    expected = sum(w * torch.log_softmax(after[h], dim=1) for h, w in weights.items())
    torch.testing.assert_close(after["ensemble"], expected)


def test_resume_in_the_middle_of_stage_two_ends_with_the_same_weights(
    tmp_path, monkeypatch, run_config, interrupt_after, final_weights
):
    run_config(tmp_path / "straight", *STAGED)
    interrupt_after(4)  # classical: 3 steps, then 1 step into the quantum stage
    with pytest.raises(TrainingInterrupted) as stopped:
        run_config(tmp_path / "cut", *STAGED)
    monkeypatch.undo()
    cut = load_checkpoint(stopped.value.checkpoint)
    assert cut["state"]["stage_index"] == 1 and cut["state"]["partial"] is not None
    run_config(tmp_path / "resumed", *STAGED, f"ckpt_path={stopped.value.checkpoint}")
    straight, again = final_weights(tmp_path / "straight"), final_weights(tmp_path / "resumed")
    assert all(torch.equal(straight[k], again[k]) for k in straight)
    kept = sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").glob("stage_*_best.pt"))
    assert kept == ["stage_classical_best.pt", "stage_ensemble_best.pt", "stage_quantum_best.pt"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["stages.quantum.trainable=[quantum,decoder]"],
            "stages.quantum.trainable=decoder: the model has no such module",
        ),
        (["stages.quantum.trainable=[]"], "stages.quantum.trainable=[]: an empty list; name module from encoder"),
        (["stages.quantum.active_heads=[quantum,qnn]"], "stages.quantum.active_heads=qnn: the model has no such head"),
        (["stages.ensemble.active_heads=[quantum]"], "stages.ensemble.trainable=['ensemble']: trains nothing"),
        (["+stages.classical.loss_weights.qnn=1"], "stages.classical.loss_weights.qnn=1: not an output"),
        (["stages.classical.cache_features=true"], "stages.classical.cache_features=True: needs everything below"),
    ],
)
def test_a_bad_stage_is_refused_before_training(overrides, message, make_config):
    cfg = make_config("model=hybrid_ensemble", "stages=classical_quantum_ensemble", *overrides)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        plan_stages(describe(cfg).stages, build(cfg.model))


def test_a_single_output_model_has_no_heads_to_mask(make_config):
    cfg = make_config("model=simple_cnn", "+stages.train.active_heads=[quantum]")
    with pytest.raises(ConfigError, match="stages.train.active_heads=.*one output, no named heads"):
        plan_stages(describe(cfg).stages, build(cfg.model))


@pytest.mark.slow
def test_the_staged_preset_reaches_97_percent_on_digits(tmp_path, run_config):
    metrics = run_config(
        tmp_path, "model=hybrid_ensemble", "stages=classical_quantum_ensemble", "hardware=cpu", "trainer.progress=false"
    )
    assert metrics["test/acc"] >= 0.97  # the ensemble's
    assert metrics["test/acc_quantum"] >= 0.9  # the quantum head alone, on the frozen encoder


def test_cached_and_uncached_quantum_stages_agree(tmp_path, run_config, read_history):
    common = [*STAGED, "dataset.augment.enabled=false"]
    run_config(tmp_path / "plain", *common)
    run_config(tmp_path / "cached", *common, "stages.quantum.cache_features=true")
    rows = {name: read_history(tmp_path / name) for name in ("plain", "cached")}
    quantum = [[r for r in rows[name] if r["stage"] == "quantum"] for name in ("plain", "cached")]
    assert len(quantum[0]) == len(quantum[1]) == 2
    for plain, cached in zip(*quantum):
        for key in ("train/loss", "val/loss", "val/acc", "val/acc_quantum"):
            assert float(cached[key]) == pytest.approx(float(plain[key]), abs=1e-5), key
    saved = torch.load(tmp_path / "cached" / "features.pt", weights_only=True)
    features, labels = saved["splits"]["train"]
    assert features.shape == (len(labels), 16) and saved["class_names"] == [str(d) for d in range(10)]


def test_heads_train_later_on_exported_features(tmp_path, run_config, final_weights, read_history):
    run_config(tmp_path / "staged", *STAGED, "stages.quantum.cache_features=true")
    exported = tmp_path / "staged" / "features.pt"
    quantum_only = ["stages.train.trainable=[quantum]", "stages.train.active_heads=[quantum]"]
    common = ["dataset=features", f"dataset.path={exported}", "model=ensemble_heads", "trainer.progress=false"]
    metrics = run_config(tmp_path / "heads", *common, *quantum_only, "stages.train.epochs=2")
    assert len(read_history(tmp_path / "heads")) == 2 and "test/acc_quantum" in metrics
    weights = final_weights(tmp_path / "heads")
    assert not any(k.startswith(("encoder.", "compression.")) for k in weights)
    with pytest.raises(
        ConfigError, match="dataset.num_features=8: .*features.pt holds 16; set dataset.num_features=16"
    ):
        run_config(tmp_path / "bad", *common, "dataset.num_features=8")


def test_a_run_resumed_with_stages_added_after_its_own_trains_them(tmp_path, run_config):
    first_only = ["stages.quantum=null", "stages.ensemble=null"]
    run_config(tmp_path / "classical", *STAGED, *first_only)
    last = tmp_path / "classical" / "checkpoints" / "last.pt"
    metrics = run_config(tmp_path / "all", *STAGED, f"ckpt_path={last}")
    stages = json.loads((tmp_path / "all" / "metrics.json").read_text())["stages"]
    assert [stage["name"] for stage in stages] == ["classical", "quantum", "ensemble"]
    assert "test/acc" in metrics
    with pytest.raises(ConfigError, match="the checkpoint's run used other settings"):  # only after its own
        run_config(tmp_path / "reordered", *STAGED, "stages.classical=null", f"ckpt_path={last}")
