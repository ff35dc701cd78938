"""Every notebook of the study, executed end to end with papermill in the smoke profile (seconds each), into a
temporary results folder (the committed results/ is never touched), twice: on the sources this machine has, and
with every real and rendered source hidden (`PAPERLIB_FALLBACKS_ONLY=1`), the path a bare machine takes.
The executed copies are checked as a reader opens them: every figure inline once, no progress-bar frames, no
warnings from imports."""
import json
import os
import re

import nbformat
import pytest

from paperlib.reproduce import run_notebook, study_notebooks

NOTEBOOKS = study_notebooks()
# The foundation and shared-layer notebooks other than 01_data and 05_synth, 32_uvac_model, and paper 003's street notebooks
# (pure-NumPy simulators; the real OAP / MAVD are never on the machines) read no dataset, so hiding the real sources
# changes nothing for them: their fallback run would only repeat the first.
NO_DATASET = {"00_core", "02_features", "03_metrics", "04_drift", "04_reproduce", "04_workflow", "06_cache", "06_train", "07_stats", "07_claims",
              "08_plots", "09_backbones", "32_uvac_model", "40_manifold_data", "41_manifold_vqvae", "42_manifold_atnet",
              "90_report"}
PROGRESS_FRAME = re.compile(r"\d+%\|")


def check_reader_view(executed, provenance):
    "The executed notebook shows each of its run's figures inline, none twice, and carries no progress-bar frames."
    nb = nbformat.read(executed, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    images = [o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {})]
    figures = provenance["figures"]
    assert len(images) >= len(figures), f"{executed.name}: {len(figures)} figures written but {len(images)} shown inline"
    assert len(set(images)) == len(images), f"{executed.name}: a figure is shown twice"
    frames = [o for o in outputs if o.get("output_type") == "stream" and PROGRESS_FRAME.search(o.get("text", ""))]
    assert not frames, f"{executed.name}: {len(frames)} progress-bar frames in the executed copy"
    noise = [o["text"][:120] for o in outputs if o.get("output_type") == "stream" and "IProgress not found" in o.get("text", "")]
    assert not noise, f"{executed.name}: tqdm.auto's ipywidgets warning in the executed copy: {noise}"


RUNS = [(nb, "present") for nb in NOTEBOOKS] + [(nb, "fallbacks") for nb in NOTEBOOKS if nb.stem not in NO_DATASET]


@pytest.fixture(scope="session")
def notebook_cache(tmp_path_factory):
    """One cache for every notebook run of the session (shared by pytest-xdist's workers): caches are keyed on content,
    so 21_timbre_classify reuses the notes 20_timbre_data rendered and the autoencoder 20_timbre_model trained, as in
    a real run, instead of rebuilding them per test. Writes are atomic, so workers may fill it side by side."""
    root = tmp_path_factory.getbasetemp()
    folder = (root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root) / "notebook-cache"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.mark.notebooks
@pytest.mark.parametrize("nb, sources", RUNS, ids=[f"{nb.stem}-{s}" for nb, s in RUNS])
def test_notebook_runs_in_smoke_profile(nb, sources, tmp_path, monkeypatch, notebook_cache):
    monkeypatch.setenv("PAPERLIB_CACHE", str(notebook_cache))
    if sources == "fallbacks":
        monkeypatch.setenv("PAPERLIB_FALLBACKS_ONLY", "1")
    params = dict(profile="smoke", seed=0, data_source="auto", device="cpu", results_dir=str(tmp_path / "results"))
    rec = run_notebook(nb, params, tmp_path / "executed")
    produced = list((tmp_path / "results").glob("*/provenance.json"))
    assert produced, f"{nb.name} committed no results (its last cell must call run.commit())"
    prov = json.loads(produced[0].read_text())
    check_reader_view(tmp_path / "executed" / nb.name, prov)
    if sources == "fallbacks":   # nothing real was used, and the sources the run names are the ones it used
        kinds = {s.get("kind") for s in prov["data_sources"].values() if isinstance(s, dict)}
        assert not kinds & {"real", "rendered"}, f"{nb.name} used {kinds} with every real source hidden"
        assert rec["fallbacks"] == prov["fallbacks"]
