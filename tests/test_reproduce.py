import json

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from pathlib import Path

from paperlib import core, reproduce
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
    assert "cell 3, line 1 (`raise RuntimeError('boom')`)" in str(err.value)
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


def test_source_notebooks_prose_is_markdown_not_commented_script():
    "A markdown cell whose every line starts with '#' renders each line as a heading (a script-to-notebook slip)."
    for nb_path in reproduce.study_notebooks():
        for c in nbformat.read(nb_path, as_version=4).cells:
            lines = [l for l in c.source.splitlines() if l.strip()] if c.cell_type == "markdown" else []
            assert not (len(lines) > 1 and all(l.startswith("#") for l in lines)) and not (lines and lines[0].startswith("# #")), \
                f"{nb_path.name}, cell {c.get('id')}: every line starts with '#' (strip the '# ' before each line)"


# ---------------------------------------------------------------- newcomer rules (issue 8)
def test_a_failure_names_the_failing_line_and_the_index_is_rewritten(tmp_path):
    nbs = tmp_path / "nbs"
    _nb(nbs / "10_ok.ipynb", WRITE.format(stem="10_ok", value=1), "run.commit()")
    # 11_bad follows 10_ok (one block): a 20_bad of another paper could run first, and Snakemake starts nothing after a failure
    _nb(nbs / "11_bad.ipynb", WRITE.format(stem="11_bad", value=2), "x = 1\ny = 2\nassert x == y, 'x and y differ'\nz = 3",
        "run.commit()")
    res = tmp_path / "results"
    with pytest.raises(reproduce.NotebookFailed) as err:
        reproduce.reproduce("quick", nbs_dir=nbs, results_dir=res)
    assert err.value.line_no == 3 and "assert x == y" in str(err.value) and "x and y differ" in str(err.value)
    assert (res / "README.md").read_text().count("## 10_ok") == 1          # the index was written despite the failure
    assert not (res / ".staging").exists()                                 # no partial results left behind


def test_parameters_from_the_command_line(tmp_path):
    nbs = tmp_path / "nbs"
    _nb(nbs / "10_p.ipynb", WRITE.format(stem="10_p", value="len(extra)"), "run.commit()")
    nb = nbformat.read(nbs / "10_p.ipynb", as_version=4)
    nb.cells[1].source += "\nextra = []"
    nbformat.write(nb, nbs / "10_p.ipynb")
    parsed = reproduce.parse_parameters([("extra", "[a, b, c]")], [nbs / "10_p.ipynb"])
    assert parsed == {nbs / "10_p.ipynb": {"extra": ["a", "b", "c"]}}
    with pytest.raises(ConfigError, match="no selected notebook has a parameter called 'extar'") as err:
        reproduce.parse_parameters([("extar", "1")], [nbs / "10_p.ipynb"])
    assert "extra" in str(err.value)
    with pytest.raises(ConfigError, match="--seed"):
        reproduce.parse_parameters([("seed", "1")], [nbs / "10_p.ipynb"])
    reproduce.reproduce("quick", nbs_dir=nbs, results_dir=tmp_path / "r", params=[("extra", "[1, 2]")])
    assert pd.read_csv(tmp_path / "r/10_p/tables/t.csv").value[0] == 2


def _fake_checkout(tmp_path, monkeypatch):
    repo = tmp_path / "repo"; (repo / "nbs").mkdir(parents=True); (repo / "pyproject.toml").write_text("")
    (repo / "results").mkdir()
    monkeypatch.setattr(core, "repo_root", lambda: repo)
    monkeypatch.setattr(reproduce, "repo_root", lambda: repo)
    return repo


def test_results_go_to_the_reference_only_with_the_reference_data(tmp_path, monkeypatch):
    from paperlib import data
    repo = _fake_checkout(tmp_path, monkeypatch)
    here = {"spoken_digits": {"source": "fsdd", "kind": "real", "fingerprint": "aaa"}}
    monkeypatch.setattr(data, "machine_sources", lambda root=None: here)
    root, ref, why = reproduce.plan_results("quick")
    assert root == repo / "results" and ref is None                        # no record yet: each notebook decides
    (repo / "results/sources.json").write_text(json.dumps(here))
    assert reproduce.plan_results("quick")[:2] == (repo / "results", True)
    root, ref, why = reproduce.plan_results("quick", custom=["seed=1"])
    assert root.parent == repo / "results/local" and ref is False and "seed=1" in why   # results/local/<hash>/
    assert reproduce.plan_results("quick", custom=["seed=2"])[0] not in (root, repo / "results/local")   # its own folder
    assert reproduce.plan_results("quick", custom=["seed=1"])[0] == root                                  # the same one again
    monkeypatch.setattr(data, "machine_sources", lambda root=None: {"spoken_digits": {"source": "numpy-digits", "fingerprint": "b"}})
    root, ref, why = reproduce.plan_results("quick")
    assert root == repo / "results/local" and "numpy-digits here, fsdd in the reference" in why
    (repo / "results/full").mkdir(); (repo / "results/full/sources.json").write_text(json.dumps(here))   # full has its own record
    assert reproduce.plan_results("full")[0] == repo / "results/local/full"
    assert reproduce.plan_results("quick", write_reference=True)[:2] == (repo / "results", True)
    monkeypatch.setenv("PAPERLIB_STRICT", "1")
    with pytest.raises(core.DataError, match="differ from those of the committed results"):
        reproduce.plan_results("quick")


def test_a_bare_run_prints_its_fallbacks_and_leaves_the_reference_alone(tmp_path, monkeypatch, capsys):
    from paperlib import data
    repo = _fake_checkout(tmp_path, monkeypatch)
    (repo / "results/sources.json").write_text(json.dumps({"spoken_digits": {"source": "fsdd", "fingerprint": "a"}}))
    monkeypatch.setattr(data, "machine_sources", lambda root=None: {"spoken_digits": {"source": "numpy-digits", "fingerprint": "b"}})
    nbs = repo / "nbs"
    _nb(nbs / "10_fb.ipynb", WRITE.format(stem="10_fb", value=1).replace("device='cpu'", "device='cpu'") +
        "\nfrom paperlib.core import fallback\nfallback('no real data for digits', 'install it')", "run.commit()")
    records = reproduce.reproduce("quick", nbs_dir=nbs)
    out = capsys.readouterr().out
    assert "results in results/local/" in out and "FALLBACK in 10_fb: no real data for digits" in out
    assert "fallbacks used: 1" in out
    assert (repo / "results/local/10_fb/tables/t.csv").exists() and (repo / "results/local/executed/10_fb.ipynb").exists()
    assert (repo / "results/local/README.md").exists() and not (repo / "results/10_fb").exists()
    assert records[0]["fallbacks"] == ["no real data for digits"]


def test_interrupt_prints_one_line_and_cleans_up(tmp_path, monkeypatch, capsys):
    from paperlib import workflow
    nbs = tmp_path / "nbs"
    _nb(nbs / "10_ok.ipynb", WRITE.format(stem="10_ok", value=1), "run.commit()")
    res = tmp_path / "results"
    def interrupted(cmd, capture=False):                                  # Ctrl-C while Snakemake runs the notebook
        (res / ".staging/10_ok/tables").mkdir(parents=True)                # a notebook half-way through its run
        (res / "executed").mkdir(parents=True, exist_ok=True); (res / "executed/.10_ok.running.ipynb").write_text("{}")
        raise KeyboardInterrupt
    monkeypatch.setattr(workflow, "run_snakemake", interrupted)
    monkeypatch.setattr(reproduce, "study_notebooks", lambda nbs_dir=None, only=None: [nbs / "10_ok.ipynb"])
    assert reproduce.main(["reproduce", "--results-dir", str(res)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["interrupted in 10_ok; committed results untouched"]
    assert not (res / ".staging").exists() and not list((res / "executed").glob(".*"))


def test_help_names_the_environment_and_the_seed():
    text = reproduce.ENVIRONMENT_HELP
    for var in ("PAPERLIB_DATA", "PAPERLIB_STRICT", "PAPERLIB_CACHE", "PAPERLIB_FALLBACKS_ONLY"):
        assert var in text
    assert "quick writes the committed results/" in text
    with pytest.raises(SystemExit):
        reproduce.main(["reproduce", "--help"])


def test_bad_data_root_fails_before_any_kernel(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PAPERLIB_DATA", str(tmp_path / "nonexistent"))
    assert reproduce.main(["reproduce", "--only", "00_core", "--results-dir", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "r/executed").exists()


def test_compare_uses_the_drift_check_numbers_must_not_move_timings_may(tmp_path, capsys):
    def tree(root, acc, secs):
        (root / "50_x/tables").mkdir(parents=True)
        pd.DataFrame({"model": ["cnn"], "test accuracy": [acc], "training time (s)": [secs]}).to_csv(root / "50_x/tables/t.csv", index=False)
        return root
    ref = tree(tmp_path / "ref", 0.9, 1.0)
    same, slower, other = tree(tmp_path / "a", 0.9, 1.0), tree(tmp_path / "b", 0.9, 2.5), tree(tmp_path / "c", 0.8, 1.0)
    assert reproduce.main(["compare", str(same), "--reference", str(ref)]) == 0
    assert reproduce.main(["compare", str(slower), "--reference", str(ref)]) == 0
    capsys.readouterr()
    assert reproduce.main(["compare", str(other), "--reference", str(ref)]) == 1
    out = capsys.readouterr().out
    assert "50_x/tables/t.csv" in out and "'test accuracy'" in out and "0.9" in out and "0.8" in out
    (other / "50_x/tables/t.csv").unlink()
    assert reproduce.main(["compare", str(other), "--reference", str(ref)]) == 1


CHUNKED = ("import numpy as np, torch, torch.nn as nn, torch.nn.functional as F\n"
           "from paperlib.cache import cached_model\nfrom paperlib.train import TrainConfig, fit\n"
           "from paperlib.core import start_run\nimport pandas as pd\n"
           "run = start_run('10_chunked', profile=profile, seed=seed, device='cpu', results_dir=results_dir)\n"
           "X = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32); y = (X[:, 0] > 0).astype(np.int64)\n"
           "def build():\n    torch.manual_seed(0); return nn.Linear(3, 2)\n"
           "def train(m): return fit(m, lambda m, b, e: {'loss': F.cross_entropy(m(b['x']), b['y'])}, {'x': X, 'y': y}, TrainConfig(epochs=3, batch_size=16))\n"
           "model, hist, hit = cached_model('toy', 'chunked-demo', build, train)\n"
           "run.table(pd.DataFrame({'loss': hist['loss']}), 'losses')\nrun.commit()")


def test_a_chunked_training_pauses_with_its_own_exit_code_and_resumes(tmp_path, monkeypatch, capsys):
    nbs = tmp_path / "nbs"
    _nb(nbs / "10_chunked.ipynb", CHUNKED)
    res = tmp_path / "results"
    monkeypatch.setattr(reproduce, "study_notebooks", lambda nbs_dir=None, only=None: [nbs / "10_chunked.ipynb"])
    monkeypatch.setenv("PAPERLIB_CHUNK_S", "0")                    # every epoch end ends the chunk: 3 epochs, 3 calls
    codes = [reproduce.main(["reproduce", "--results-dir", str(res)]) for _ in range(3)]
    assert codes == [3, 3, 0]
    captured = capsys.readouterr()
    err = captured.err
    assert captured.out.count("10_chunked                   PAUSED") == 2 and "FAILED" not in captured.out
    assert "PAUSED in 10_chunked: training paused after epoch 1 of 3" in err and "FAILED" not in err
    assert len(pd.read_csv(res / "10_chunked" / "tables" / "losses.csv")) == 3
