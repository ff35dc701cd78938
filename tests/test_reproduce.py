import json

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from paperlib import reproduce
from paperlib.core import ConfigError


def _nb(path, *sources):
    cells = [new_markdown_cell("# demo")]
    cells.append(new_code_cell('profile = "quick"\nseed = 0\ndata_source = "auto"\ndevice = "auto"\nresults_dir = None',
                               metadata={"tags": ["parameters"]}))
    cells += [new_code_cell(s) for s in sources]
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "python3", "language": "python"}})
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


WRITE = ("import pandas as pd\nfrom paperlib.core import start_run\n"
         "run = start_run('{stem}', profile=profile, seed=seed, device='cpu', results_dir=results_dir)\n"
         "run.table(pd.DataFrame({{'value': [{value}]}}), 't')")


def test_study_notebooks_order_and_selection():
    nbs = reproduce.study_notebooks()
    assert [p.name for p in nbs] == sorted(p.name for p in nbs) and nbs[0].stem == "00_core"
    assert [p.stem for p in reproduce.study_notebooks(only=["00_core"])] == ["00_core"]
    assert all(p.stem.startswith("0") for p in reproduce.study_notebooks(only=["0"]))
    with pytest.raises(ConfigError, match="matches no notebook"):
        reproduce.study_notebooks(only=["77"])


def test_reproduce_runs_in_order_and_a_failure_names_notebook_and_cell(tmp_path):
    nbs = tmp_path / "nbs"
    _nb(nbs / "10_ok.ipynb", WRITE.format(stem="10_ok", value=1), "run.commit()")
    _nb(nbs / "20_bad.ipynb", WRITE.format(stem="20_bad", value=2), "run.commit()")
    res = tmp_path / "results"
    records = reproduce.reproduce("quick", nbs_dir=nbs, results_dir=res)
    assert [r["notebook"] for r in records] == ["10_ok", "20_bad"]
    assert (res / "executed/20_bad.ipynb").exists() and (res / "README.md").read_text().count("## ") == 2
    executed_before = (res / "executed/20_bad.ipynb").read_bytes()
    # now 20_bad fails after staging a new table: its committed results and executed copy must survive
    _nb(nbs / "20_bad.ipynb", WRITE.format(stem="20_bad", value=99), "raise RuntimeError('boom')", "run.commit()")
    with pytest.raises(reproduce.NotebookFailed) as err:
        reproduce.reproduce("quick", nbs_dir=nbs, results_dir=res)
    assert err.value.notebook.name == "20_bad.ipynb" and err.value.cell == 3 and "boom" in str(err.value)
    assert "cell 3 (`raise RuntimeError('boom')`)" in str(err.value)
    assert err.value.executed.exists()
    assert pd.read_csv(res / "20_bad/tables/t.csv").value[0] == 2
    assert (res / "executed/20_bad.ipynb").read_bytes() == executed_before
    assert not any(p.name.startswith(".") for p in (res / "executed").iterdir())


def test_parameters_reach_the_notebook(tmp_path):
    nbs = tmp_path / "nbs"
    _nb(nbs / "10_p.ipynb", WRITE.format(stem="10_p", value="seed"), "run.commit()")
    reproduce.reproduce("quick", nbs_dir=nbs, results_dir=tmp_path / "r", seed=7)
    assert pd.read_csv(tmp_path / "r/10_p/tables/t.csv").value[0] == 7
    assert json.loads((tmp_path / "r/10_p/provenance.json").read_text())["seed"] == 7


def test_cli_exit_codes(tmp_path, capsys):
    assert reproduce.main(["reproduce", "--only", "77", "--results-dir", str(tmp_path)]) == 2
    assert "matches no notebook" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        reproduce.main(["reproduce", "--profile", "huge"])


def test_strip_outputs(tmp_path):
    p = _nb(tmp_path / "x.ipynb", "1 + 1")
    nb = nbformat.read(p, as_version=4)
    nb.cells[2].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    nb.cells[2].execution_count = 1
    nbformat.write(nb, p)
    assert reproduce.strip_outputs([p], check=True) == [p]
    assert reproduce.strip_outputs([p]) == [p]
    clean = nbformat.read(p, as_version=4)
    assert clean.cells[2].outputs == [] and clean.cells[1].metadata["tags"] == ["parameters"]
    assert reproduce.strip_outputs([p], check=True) == []


def test_source_notebooks_are_output_free_and_tagged():
    for nb_path in reproduce.study_notebooks():
        nb = nbformat.read(nb_path, as_version=4)
        assert reproduce.strip_outputs([nb_path], check=True) == [], f"{nb_path.name} carries outputs: run `paperlib clean`"
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{nb_path.name} needs exactly one cell tagged 'parameters'"
        src = tagged[0].source
        for name in ("profile", "seed", "data_source", "device", "results_dir"):
            assert f"{name} =" in src, f"{nb_path.name}: parameters cell lacks {name}"
        assert 'profile = "quick"' in src, f"{nb_path.name}: the default profile must be quick"
