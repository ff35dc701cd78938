import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from paperlib import core
from paperlib.core import ConfigError, DataError


def test_profiles_are_data_and_pick_validates():
    assert set(core.PROFILES) == {"smoke", "quick", "full"}
    table = {"smoke": {"n": 1}, "quick": {"n": 2}, "full": {"n": 3}}
    assert core.get_profile("full").pick(table) == {"n": 3}
    with pytest.raises(ConfigError, match="no row for profile"):
        core.get_profile("quick").pick({"quick": {"n": 2}})
    with pytest.raises(ConfigError, match="not one of"):
        core.get_profile("quik")


@pytest.mark.parametrize("value", [0, -1, float("nan"), "3", True])
def test_check_positive_rejects(value):
    with pytest.raises(ConfigError, match="How to fix"):
        core.check_positive("n_fft", value)


def test_seed_everything_makes_numpy_and_torch_repeatable():
    a = core.seed_everything(3).random(4), torch.rand(4)
    b = core.seed_everything(3).random(4), torch.rand(4)
    assert np.array_equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = core.seed_everything(4).random(4)
    assert not np.array_equal(a[0], c)


def test_resolve_device():
    assert core.resolve_device("cpu").type == "cpu"
    assert core.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError):
        core.resolve_device("tpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            core.resolve_device("cuda")


def test_data_root_and_cache_follow_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLIB_DATA", str(tmp_path / "d"))
    assert core.data_root() == (tmp_path / "d").resolve()
    assert core.cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("PAPERLIB_DATA")
    assert core.data_root() == tmp_path / "cache" / "data"


def test_fallback_warns_or_fails_under_strict(monkeypatch):
    with pytest.warns(UserWarning, match="FALLBACK"):
        core.fallback("no data", "get data")
    monkeypatch.setenv("PAPERLIB_STRICT", "1")
    with pytest.raises(DataError, match="PAPERLIB_STRICT"):
        core.fallback("no data", "get data")


def _table(v):
    return pd.DataFrame({"method": ["a"], "accuracy": [v]})


def test_run_commits_atomically_and_failed_runs_leave_results(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    run = core.start_run("99_demo", profile="quick", seed=1, results_dir=tmp_path, extra=5)
    run.record_source("train", {"name": "fsdd", "kind": "real"})
    run.table(_table(0.75), "acc", caption="Accuracy.")
    fig, ax = plt.subplots(); ax.plot([1, 2]); run.figure(fig, "curve"); plt.close(fig)
    with run.timed("step"):
        pass
    assert not (tmp_path / "99_demo").exists()          # nothing visible before commit
    final = run.commit()
    assert final == tmp_path / "99_demo"
    assert sorted(p.name for p in final.rglob("*") if p.is_file()) == ["acc.csv", "acc.md", "curve.png", "provenance.json"]
    prov = json.loads((final / "provenance.json").read_text())
    assert prov["profile"] == "quick" and prov["seed"] == 1 and prov["params"] == {"extra": 5}
    assert prov["tables"] == ["acc"] and prov["figures"] == ["curve"] and "step" in prov["timings_s"]
    assert prov["data_sources"]["train"]["name"] == "fsdd" and prov["packages"]["numpy"]
    assert "Data: train: fsdd" in (final / "tables/acc.md").read_text()
    with pytest.raises(RuntimeError):
        run.table(_table(0.1), "late")
    # a second run that dies before commit leaves the first run's results alone
    again = core.start_run("99_demo", profile="quick", results_dir=tmp_path)
    again.table(_table(0.0), "acc")
    assert pd.read_csv(final / "tables/acc.csv").accuracy[0] == 0.75
    # and a later successful run replaces them completely
    third = core.start_run("99_demo", profile="quick", results_dir=tmp_path)
    third.table(_table(0.5), "other")
    third.commit()
    assert sorted(p.name for p in (tmp_path / "99_demo/tables").iterdir()) == ["other.csv", "other.md"]
    assert not (tmp_path / ".staging").exists()


def test_result_names_are_validated(tmp_path):
    run = core.start_run("99_demo", results_dir=tmp_path)
    with pytest.raises(ConfigError):
        run.table(_table(1), "../escape")


def test_smoke_profile_never_writes_into_results():
    root = core.results_root("smoke")
    assert "paperlib-smoke" in root.name
    assert core.results_root("quick").name == "results"
    assert core.results_root("full").parts[-2:] == ("results", "full")


def test_bad_parameters_fail_at_start(tmp_path):
    with pytest.raises(ConfigError):
        core.start_run("x", profile="fast", results_dir=tmp_path)
    with pytest.raises(ConfigError):
        core.start_run("x", seed=-1, results_dir=tmp_path)
    with pytest.raises(ConfigError):
        core.start_run("x", data_source="", results_dir=tmp_path)
