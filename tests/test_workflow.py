"""The reproduction as a Snakemake workflow (paperlib.workflow, workflow/Snakefile): order, fingerprints, skipping,
parallel runs, dry runs and the full profile's sweep of paper 002 as separate jobs."""
import json
from pathlib import Path

import pandas as pd
import pytest

from paperlib import reproduce, workflow
from tests.test_reproduce import WRITE, _nb


def test_order_chains_each_block_and_puts_the_report_last():
    deps = workflow.notebook_dependencies(["00_core", "01_data", "30_a", "31_b", "32_c", "50_x", "90_report"])
    assert deps == {"00_core": [], "01_data": ["00_core"], "30_a": [], "31_b": ["30_a"], "32_c": ["31_b"], "50_x": [],
                    "90_report": ["01_data", "32_c", "50_x"]}
    assert workflow.notebook_dependencies(["31_b"]) == {"31_b": []}          # only among the selected notebooks


def test_imported_modules_follow_the_imports_of_the_modules():
    root = Path(workflow.__file__).resolve().parent
    mods = workflow.imported_modules(Path("nbs/33_uvac_table1.ipynb"))
    for m in ("core.py", "train.py", "uvac/data.py", "uvac/model.py", "data.py"):
        assert root / m in mods, m                                          # uvac.data imports paperlib.train, ...
    assert root / "manifold/atnet.py" not in mods and root / "drift.py" not in mods
    assert workflow._imported("from .core import a, b\nfrom . import x\nfrom ..stats import (c,\n  d)", "paperlib.uvac") >= \
        {"paperlib.uvac.core", "paperlib.uvac.x", "paperlib.stats"}


def test_fingerprint_moves_with_content_parameters_data_and_upstream(tmp_path):
    nb = _nb(tmp_path / "10_a.ipynb", "x = 1")
    fp = workflow.job_fingerprint(nb, [], {"seed": 0}, {"digits": "a"}, [])
    assert fp == workflow.job_fingerprint(nb, [], {"seed": 0}, {"digits": "a"}, [])     # stable
    others = [workflow.job_fingerprint(nb, [], {"seed": 1}, {"digits": "a"}, []),
              workflow.job_fingerprint(nb, [], {"seed": 0}, {"digits": "b"}, []),
              workflow.job_fingerprint(nb, [], {"seed": 0}, {"digits": "a"}, ["up"])]
    _nb(tmp_path / "10_a.ipynb", "x = 2")
    others.append(workflow.job_fingerprint(nb, [], {"seed": 0}, {"digits": "a"}, []))
    assert len({fp, *others}) == 5


def test_uvac_table1_full_sweep_is_one_job_per_set_and_seed():
    jobs = workflow.uvac_table1_sweep("full", {})
    assert len(jobs) == 9 and {tuple(p["datasets"]) for _, p, _ in jobs} == {("digits",), ("tau",), ("us8k",)}
    firsts = [s for s, _, after in jobs if not after]
    assert firsts == ["digits_s0", "tau_s0", "us8k_s0"]                      # the lambda sweep runs once per set
    assert all(after == [s.rsplit("_", 1)[0] + "_s0"] for s, _, after in jobs if after)
    assert workflow.uvac_table1_sweep("quick", {}) == [] and workflow.uvac_table1_sweep("full", {"datasets": ["digits"]}) == []


def test_dry_run_of_the_quick_study_lists_every_notebook_in_order(capsys):
    recs = reproduce.reproduce("quick", dry_run=True)
    stems = [p.stem for p in reproduce.study_notebooks()]
    assert [r["job"] for r in recs] == stems
    after = {r["job"]: r["after"] for r in recs}
    assert after["31_uvac_data"] == ["30_uvac_scenes"] and after["50_recognize_data"] == []
    assert set(after["90_report"]) == {"09_backbones", "13_touch_sound2umap", "22_timbre_transform", "34_uvac_ablation",
                                       "42_manifold_atnet", "51_recognize_models"}
    assert "job(s) would run" in capsys.readouterr().out


def test_dry_run_of_paper_002_full_sweep_lists_its_parallel_jobs(capsys):
    recs = reproduce.reproduce("full", only=["3"], dry_run=True, cores=4)
    jobs = {r["job"]: r["after"] for r in recs}
    sweep = [j for j in jobs if j.startswith("33_uvac_table1.")]
    assert len(sweep) == 9 and all(r["would_run"] for r in recs if r["job"] in sweep)
    assert jobs["33_uvac_table1"] == ["32_uvac_model"] + sweep                 # the aggregating run after all of them
    assert all(jobs[j][0] == "32_uvac_model" for j in sweep)
    out = capsys.readouterr().out
    assert "33_uvac_table1.tau_s2" in out and "14 job(s)" in out


@pytest.mark.notebooks
def test_a_second_run_runs_nothing_and_a_change_reruns_what_depends_on_it(tmp_path):
    nbs, res = tmp_path / "nbs", tmp_path / "results"
    for stem, value in (("10_a", 1), ("11_b", 2), ("20_c", 3)):
        _nb(nbs / f"{stem}.ipynb", WRITE.format(stem=stem, value=value), "run.commit()")
    run = lambda **kw: {r["job"]: r["ran"] for r in reproduce.reproduce("quick", nbs_dir=nbs, results_dir=res, cores=2, **kw)}
    assert run() == {"10_a": True, "11_b": True, "20_c": True}
    assert run() == {"10_a": False, "11_b": False, "20_c": False}            # nothing changed: nothing runs
    for p in (nbs / "10_a.ipynb", nbs / "20_c.ipynb"): p.touch()              # newer files, same content: still nothing
    assert not any(run().values())
    _nb(nbs / "10_a.ipynb", WRITE.format(stem="10_a", value=10), "run.commit()")
    assert run() == {"10_a": True, "11_b": True, "20_c": False}              # 10_a and what follows it, not paper 2x
    assert pd.read_csv(res / "10_a/tables/t.csv").value[0] == 10
    import shutil; shutil.rmtree(res / "20_c")                                 # results deleted behind the workflow's back
    assert run() == {"10_a": False, "11_b": False, "20_c": True}
    assert all(run(force=True).values())                                       # --force: everything
    assert (res / "README.md").read_text().count("## ") == 3                   # the front page, from the handler


@pytest.mark.notebooks
def test_kernels_see_the_thread_limits_of_the_caller_not_snakemakes(tmp_path, monkeypatch):
    "Snakemake sets OMP_NUM_THREADS=1 (and more) in a job's shell; the kernels must not inherit it (the numbers move)."
    import os
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False); monkeypatch.setenv("MKL_NUM_THREADS", "2")
    nbs, res = tmp_path / "nbs", tmp_path / "results"
    # the kernel's environment as it starts (start_run then pins the quick profile's two threads itself)
    _nb(nbs / "10_t.ipynb", WRITE.format(stem="10_t", value="repr(_omp) + ' ' + _mkl + ' ' + str(torch.get_num_threads())")
        .replace("import pandas as pd", "import os; _omp, _mkl = os.environ.get('OMP_NUM_THREADS'), os.environ.get('MKL_NUM_THREADS')\n"
                 "import torch, pandas as pd"), "run.commit()")
    reproduce.reproduce("quick", nbs_dir=nbs, results_dir=res)
    assert pd.read_csv(res / "10_t/tables/t.csv").value[0] == "None 2 2"


def test_jobs_run_one_at_a_time_share_one_numba_cache_and_side_by_side_get_their_own(tmp_path):
    "Cold numba compiles cost ~30 s a notebook: serial jobs share a folder; parallel ones must not (a shared folder segfaulted)."
    nbs = tmp_path / "nbs"
    _nb(nbs / "10_t.ipynb", WRITE.format(stem="10_t", value="os.path.basename(os.environ['NUMBA_CACHE_DIR'])")
        .replace("import pandas as pd", "import os, pandas as pd"), "run.commit()")
    for cores, folder in [(1, "serial"), (2, "10_t")]:
        res = tmp_path / f"results{cores}"
        reproduce.reproduce("quick", nbs_dir=nbs, results_dir=res, cores=cores)
        assert pd.read_csv(res / "10_t/tables/t.csv").value[0] == folder


def test_a_cold_shared_numba_folder_is_warmed_once_for_the_libraries_the_notebooks_import(tmp_path, monkeypatch):
    "librosa's import-time numba functions compile before the first job (its own log line), not in whichever notebook."
    plain, uses = _nb(tmp_path / "10_a.ipynb", "x = 1"), _nb(tmp_path / "11_b.ipynb", "import librosa")
    assert workflow.numba_libraries([plain]) == [] and workflow.numba_libraries([uses]) == ["librosa"]
    assert "umap" in workflow.numba_libraries([Path("nbs/12_touch_manifold.ipynb")])     # through paperlib's modules
    folder = tmp_path / "numba"
    assert workflow.warm_numba(folder, [plain]) == ([], 0.0) and not folder.exists()
    libs, seconds = workflow.warm_numba(folder, [plain, uses])
    assert libs == ["librosa"] and seconds > 0 and any(folder.glob("librosa_*"))
    assert workflow.warm_numba(folder, [uses]) == ([], 0.0)                                # warm: nothing to do
    monkeypatch.setitem(workflow.NUMBA_WARMUPS, "librosa", "import no_such_module_here")
    assert workflow.warm_numba(tmp_path / "other", [uses]) == ([], 0.0)                    # a failed warm-up stops nothing
