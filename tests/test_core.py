import json
import os
import subprocess
import sys
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
    with pytest.raises(ConfigError, match="no entry for profile"):
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


def test_seed_everything_switches_deterministic_kernels_without_importing_the_compiler():
    import subprocess, sys
    code = ("import sys, torch; from paperlib.core import seed_everything; seed_everything(0); "
            "print(torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(), "
            "'torch._inductor' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True", "False"]      # deterministic, warn-only, and no 1.5 s compiler import in a fresh process
    core.seed_everything(0)                      # in this process torch.compile's modules may already be loaded
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()


def test_resolve_device():
    assert core.resolve_device("cpu").type == "cpu"
    assert core.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError):
        core.resolve_device("tpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            core.resolve_device("cuda")


def test_data_root_and_cache_follow_environment(tmp_path, monkeypatch):
    (tmp_path / "d").mkdir()
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


def test_smoke_profile_never_writes_into_results_nor_leaves_temp_folders(tmp_path):
    root = core.results_root("smoke")
    assert root == core.cache_dir() / "smoke" and root.is_relative_to(tmp_path)   # the test's own cache (conftest)
    assert not core.is_reference_root(root)
    assert core.results_root("quick").name == "results" and core.is_reference_root(core.results_root("quick"))
    assert core.results_root("full").parts[-2:] == ("results", "full")
    assert core.local_root("quick").parts[-2:] == ("results", "local")
    assert core.local_root("full").parts[-3:] == ("results", "local", "full")


def test_bad_parameters_fail_at_start(tmp_path):
    with pytest.raises(ConfigError):
        core.start_run("x", profile="fast", results_dir=tmp_path)
    with pytest.raises(ConfigError):
        core.start_run("x", seed=-1, results_dir=tmp_path)
    with pytest.raises(ConfigError):
        core.start_run("x", data_source="", results_dir=tmp_path)


# ---------------------------------------------------------------- newcomer rules (issue 8)
def test_data_root_that_does_not_exist_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PAPERLIB_DATA", str(tmp_path / "nonexistent"))
    with pytest.raises(core.DataError, match="does not exist"):
        core.data_root()
    monkeypatch.setenv("PAPERLIB_DATA", str(tmp_path))
    assert core.data_root() == tmp_path.resolve()


def test_named_rng_streams_are_reproducible_and_independent():
    assert core.rng(0, "split").random() == core.rng(0, "split").random()
    assert core.rng(0, "split").random() != core.rng(0, "curve").random()
    assert core.rng(0, "split", 1).random() != core.rng(0, "split", 2).random() != core.rng(1, "split", 2).random()
    with pytest.raises(core.ConfigError, match="stream"):
        core.rng(0, "")


def test_pick_returns_a_settings_instance_or_a_row():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class S:
        epochs: int

    table = {"smoke": S(1), "quick": S(5), "full": S(500)}
    assert core.get_profile("quick").pick(table) is table["quick"]
    assert core.get_profile("full").pick({p: dict(n=i) for i, p in enumerate(core.PROFILES)}) == {"n": 2}
    with pytest.raises(core.ConfigError, match="no entry for profile"):
        core.get_profile("quick").pick({"quick": S(5)})

def test_fallbacks_are_recorded_once_and_fail_under_strict(monkeypatch, capsys):
    monkeypatch.setattr(core, "_FALLBACKS", [])
    with pytest.warns(UserWarning, match="FALLBACK"):
        core.fallback("no data for x", "install x")
    core.fallback("no data for x", "install x")        # said once
    assert core.fallbacks_used() == ["no data for x"]
    assert capsys.readouterr().err.count("FALLBACK: no data for x") == 1
    monkeypatch.setenv("PAPERLIB_STRICT", "1")
    with pytest.raises(core.DataError, match="PAPERLIB_STRICT"):
        core.fallback("no data for y", "install y")


def _reference_checkout(tmp_path, monkeypatch, sources):
    "A fake checkout whose results/99_demo was committed from `sources`."
    repo = tmp_path / "repo"; (repo / "nbs").mkdir(parents=True); (repo / "pyproject.toml").write_text("")
    monkeypatch.setattr(core, "repo_root", lambda: repo)
    run = core.start_run("99_demo", profile="quick")
    for role, src in sources.items(): run.record_source(role, src)
    run.table(_table(1), "t")
    run.commit()
    return repo


def test_a_run_on_other_data_does_not_overwrite_the_reference(tmp_path, monkeypatch, capsys):
    repo = _reference_checkout(tmp_path, monkeypatch, {"train": {"name": "fsdd", "fingerprint": "aaa"}})
    assert (repo / "results/99_demo/tables/t.csv").exists()
    run = core.start_run("99_demo", profile="quick")
    run.record_source("train", {"name": "numpy-digits", "fingerprint": "bbb"})
    run.table(_table(2), "t")
    receipt = tmp_path / "receipt.json"
    monkeypatch.setenv("PAPERLIB_RECEIPT", str(receipt))
    final = run.commit()
    assert final == repo / "results/local/99_demo"
    assert pd.read_csv(repo / "results/99_demo/tables/t.csv").accuracy[0] == 1          # the reference is untouched
    assert pd.read_csv(final / "tables/t.csv").accuracy[0] == 2
    assert "NOT THE REFERENCE" in capsys.readouterr().err
    rec = json.loads(receipt.read_text())
    assert rec["redirected"] and rec["results"] == str(final)
    assert not (repo / "results/.staging").exists()


def test_same_data_elsewhere_still_writes_the_reference_and_strict_refuses_other_data(tmp_path, monkeypatch):
    repo = _reference_checkout(tmp_path, monkeypatch, {"train": {"name": "fsdd", "fingerprint": "aaa", "path": "/one/place"}})
    run = core.start_run("99_demo", profile="quick")
    run.record_source("train", {"name": "fsdd", "fingerprint": "aaa", "path": "/another/place"})   # a path is not identity
    run.table(_table(3), "t")
    assert run.commit() == repo / "results/99_demo"
    run = core.start_run("99_demo", profile="quick")
    run.record_source("train", {"name": "fsdd", "fingerprint": "ccc"})                 # same name, other content
    run.table(_table(4), "t")
    monkeypatch.setenv("PAPERLIB_STRICT", "1")
    with pytest.raises(core.DataError, match="other data than the committed results"):
        run.commit()
    assert pd.read_csv(repo / "results/99_demo/tables/t.csv").accuracy[0] == 3
    monkeypatch.setenv("PAPERLIB_WRITE_REFERENCE", "1")                                # asked for explicitly
    assert run.commit() == repo / "results/99_demo"
    assert pd.read_csv(repo / "results/99_demo/tables/t.csv").accuracy[0] == 4


def test_identity_differences_name_what_changed():
    ours = core.source_identity({"train": {"name": "a", "fingerprint": "1"}, "test": {"name": "b"}})
    assert core.identity_differences(ours, ours) == []
    ref = core.source_identity({"train": {"name": "a", "fingerprint": "2"}})
    diffs = core.identity_differences(ours, ref)
    assert any("other content" in d for d in diffs) and any(d.startswith("test:") for d in diffs)


def test_provenance_dirty_flag_ignores_rewritten_results():
    assert set(core.SOURCE_PATHS) == {"nbs", "paperlib", "pyproject.toml"}
    g = core.git_commit()
    assert set(g) == {"commit", "dirty"}


def test_quick_and_smoke_pin_two_threads_whatever_the_machine(tmp_path):
    "The thread count orders float sums: quick's numbers must not depend on the cores of the machine that runs it."
    import torch
    from threadpoolctl import threadpool_info
    from paperlib.core import get_profile, pin_threads, start_run
    assert get_profile("quick").threads == get_profile("smoke").threads == 2 and get_profile("full").threads is None
    before = torch.get_num_threads()
    env = {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    try:
        got = pin_threads(1)
        assert got["torch"] == torch.get_num_threads() == 1 and got["blas"] == 1 and got["openmp"] == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p.get("user_api") in ("blas", "openmp"))
        assert os.environ["OMP_NUM_THREADS"] == os.environ["OPENBLAS_NUM_THREADS"] == "1"   # libraries loaded later
        run = start_run("00_demo", profile="smoke", results_dir=tmp_path)
        assert torch.get_num_threads() == 2 and run.threads["torch"] == 2 and run.threads["cpus"] == os.cpu_count()
        assert run.provenance()["threads"] == run.threads
        with pytest.raises(ConfigError): pin_threads(0)
    finally:
        pin_threads(before)
        for var, value in env.items():
            if value is None: os.environ.pop(var, None)
            else: os.environ[var] = value


_FAULTS = r'''
import json, resource, sys
import numpy as np
import paperlib.core as core
faults = []
for _ in range(5):                      # allocate, touch and free 48 MB five times
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.ones(12 << 20, np.float32); del a
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"allocator": core.ALLOCATOR, "faults": faults}))
'''


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_tuned_allocator_reuses_freed_memory_and_can_be_switched_off():
    "Importing paperlib.core raises glibc's thresholds: a freed 48 MB array is reused, not faulted in again."
    def probe(**env):
        e = {k: v for k, v in os.environ.items() if k != "PAPERLIB_MALLOC"} | env
        out = subprocess.run([sys.executable, "-c", _FAULTS], env=e, capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    tuned, default = probe(), probe(PAPERLIB_MALLOC="default")
    assert tuned["allocator"] == {k: v for k, (_, v) in core.MALLOC_SETTINGS.items()}
    assert default["allocator"] == {}
    # glibc's default: mmapped and faulted in again on every allocation (in 4 kB or, where numpy asks for them, 2 MB
    # pages); tuned: the first allocation's memory is reused
    assert min(default["faults"][1:]) >= 20
    assert max(tuned["faults"][1:]) * 10 < min(default["faults"][1:])
