"""Every notebook of the study, executed end to end with papermill in the smoke profile (seconds each),
into a temporary results folder: the committed results/ is never touched."""
import pytest

from paperlib.reproduce import run_notebook, study_notebooks

NOTEBOOKS = study_notebooks()


@pytest.mark.notebooks
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_profile(nb, tmp_path):
    params = dict(profile="smoke", seed=0, data_source="auto", device="cpu", results_dir=str(tmp_path / "results"))
    run_notebook(nb, params, tmp_path / "executed")
    produced = list((tmp_path / "results").glob("*/provenance.json"))
    assert produced, f"{nb.name} committed no results (its last cell must call run.commit())"
