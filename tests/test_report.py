"""paperlib.report: the claims ledger, verdict counts (the paper's own claims apart from ours), the README written from a
results folder (links, missing notebooks, stale full-profile folders) and the executed-notebook readability check,
on a small fabricated results folder."""
import json
import subprocess

import pytest

from paperlib.claims import CLAIMS_COLUMNS, VERDICTS
from paperlib.core import DataError
from paperlib.report import (claims_ledger, executed_notebook_problems, folder_size_mb, paper_columns, paper_of,
                             results_at_a_glance, source_hashes, staleness, verdict_counts, write_report)

CLAIMS = {
    "21_timbre_fake": [("MLP > SVM", "paper", "holds"), ("SVM reaches 72 %", "paper", "does not hold"),
                       ("latent beats log-mel", "ours", "inconclusive")],
    "51_recognize_fake": [("CNN > NN", "paper", "inconclusive"), ("97 % on test", "paper", "holds"),
                          ("beats chance", "ours", "holds"), ("cross-SoundFont", "ours", "not testable here"),
                          ("paper's own split", "paper", "by construction")],
}


def _claims_csv(rows) -> str:
    lines = [",".join(CLAIMS_COLUMNS)]
    lines += [f'{c},{o},p,q,"[0.1, 0.2]",{v},bootstrap,why' for c, o, v in rows]
    return "\n".join(lines) + "\n"


def _notebook(root, stem, rows, prov_extra=None):
    d = root / stem
    (d / "tables").mkdir(parents=True)
    (d / "figures").mkdir()
    (d / "tables" / "claims.csv").write_text(_claims_csv(rows))
    (d / "tables" / "claims.md").write_text("### claims\n\ncaption\n\n| claim |\n|---|\n| x |\n")
    (d / "tables" / "accuracy.csv").write_text("model,paper,accuracy\nCNN,97,0.62\n")
    (d / "tables" / "accuracy.md").write_text("### accuracy\n\nTest accuracy.\n\n| model | paper | accuracy |\n|---|---|---|\n| CNN | 97 | 0.62 |\n")
    (d / "tables" / "timings.csv").write_text("step,seconds\nfit,1.0\n")
    (d / "tables" / "timings.md").write_text("### timings\n\n| step | seconds |\n|---|---|\n| fit | 1.0 |\n")
    (d / "figures" / "curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    prov = {"notebook": stem, "profile": "quick", "seed": 0, "wall_time_s": 2.0,
            "data_sources": {"train": {"name": f"src-{stem}", "kind": "rendered", "fingerprint": "ab12"}},
            "fallbacks": ["no real data: synthetic stand-in"] if stem.startswith("21") else [],
            "git": {"commit": "0123456789abcdef", "dirty": False},
            "tables": ["claims", "accuracy", "timings"], "figures": ["curve"], **(prov_extra or {})}
    (d / "provenance.json").write_text(json.dumps(prov))
    return d


def _nb(outputs):
    return json.dumps({"cells": [{"cell_type": "code", "source": "x", "metadata": {}, "execution_count": 1, "outputs": outputs}],
                       "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


FRAME = {"output_type": "stream", "name": "stderr", "text": " 10%|#         | 1/10 [00:00<00:01,  9.1it/s]\r 20%|##"}
PNG_FIGURE = {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 640x480 with 1 Axes>"}}
TEXT_FIGURE = {"output_type": "display_data", "metadata": {}, "data": {"text/plain": "<Figure size 640x480 with 1 Axes>"}}


@pytest.fixture
def repo(tmp_path):
    "A fake checkout: the notebooks and a paperlib package the staleness check hashes."
    r = tmp_path / "repo"
    (r / "nbs").mkdir(parents=True); (r / "paperlib").mkdir()
    for stem in CLAIMS: (r / "nbs" / f"{stem}.ipynb").write_text(f'{{"stem": "{stem}"}}')
    (r / "paperlib" / "core.py").write_text("x = 1\n")
    return r


@pytest.fixture
def results(tmp_path, repo):
    root = tmp_path / "results"
    for stem, rows in CLAIMS.items(): _notebook(root, stem, rows)
    # full profile: 21 made from today's source (hashes match), 51 from an older notebook (stale)
    _notebook(root / "full", "21_timbre_fake", CLAIMS["21_timbre_fake"], {"source_hashes": source_hashes("21_timbre_fake", repo)})
    _notebook(root / "full", "51_recognize_fake", CLAIMS["51_recognize_fake"],
              {"source_hashes": {**source_hashes("51_recognize_fake", repo), "notebook": "0" * 40}})
    (root / "executed").mkdir()
    (root / "executed" / "21_timbre_fake.ipynb").write_text(_nb([PNG_FIGURE]))
    (root / "executed" / "51_recognize_fake.ipynb").write_text(_nb([FRAME, PNG_FIGURE]))
    return root


def test_paper_of_blocks():
    assert [paper_of(s) for s in ("10_touch_data", "22_x", "33_x", "42_x", "51_x")] == ["000", "001", "002", "003", "004"]
    assert paper_of("07_claims") is None and paper_of("90_report") is None and paper_of("README") is None


def test_ledger_rows_and_links(results):
    led = claims_ledger(results)
    assert len(led) == 8
    assert list(led.columns) == ["paper id", "notebook", *CLAIMS_COLUMNS, "link"]
    row = led[led["claim"] == "CNN > NN"].iloc[0]
    assert row["paper id"] == "004" and row["notebook"] == "51_recognize_fake" and row["verdict"] == "inconclusive"
    assert row["interval"] == "[0.1, 0.2]" and row["origin"] == "paper"
    assert row["link"] == "[claims](51_recognize_fake/tables/claims.md)"
    # links relative to another folder (the ledger table's own folder)
    led2 = claims_ledger(results, link_from=results / "90_report" / "tables")
    assert led2["link"].iloc[0] == "[claims](../../21_timbre_fake/tables/claims.md)"
    assert set(led["paper id"]) == {"001", "004"}


def test_counts_keep_paper_and_ours_apart(results):
    c = verdict_counts(claims_ledger(results)).set_index(["paper id", "origin"])
    assert list(c.columns) == [*VERDICTS, "total"]
    assert c.loc[("001", "paper"), "holds"] == 1 and c.loc[("001", "paper"), "does not hold"] == 1
    assert c.loc[("001", "paper"), "total"] == 2 and c.loc[("001", "ours"), "inconclusive"] == 1
    assert c.loc[("004", "paper")].to_dict() == {"holds": 1, "does not hold": 0, "inconclusive": 1, "by construction": 1,
                                                  "not testable here": 0, "total": 3}
    assert c.loc[("004", "ours"), "holds"] == 1 and c.loc[("004", "ours"), "not testable here"] == 1
    assert list(c.index) == [("001", "paper"), ("001", "ours"), ("004", "paper"), ("004", "ours")]


def test_bad_verdict_is_a_data_error(results):
    f = results / "21_timbre_fake" / "tables" / "claims.csv"
    f.write_text(f.read_text().replace("does not hold", "mostly holds"))
    with pytest.raises(DataError, match="mostly holds"):
        claims_ledger(results)


def test_empty_results_folder(tmp_path, repo):
    led = claims_ledger(tmp_path / "nothing")
    assert len(led) == 0 and len(verdict_counts(led)) == 0
    out = write_report(tmp_path / "empty", expected=["21_timbre_fake", "51_recognize_fake"], repo=repo)
    text = out.read_text()
    assert "## No results yet" in text and "`21_timbre_fake`, `51_recognize_fake`" in text
    assert "No results yet for this paper." in text
    assert "No claims" in results_at_a_glance(tmp_path / "empty")


def test_readme_written_with_links(results, repo):
    out = write_report(results, expected=["21_timbre_fake", "51_recognize_fake", "33_uvac_missing"], repo=repo)
    assert out == results / "README.md"
    text = out.read_text()
    # counts, missing notebooks, per paper sections
    assert "## No results yet" in text and "`33_uvac_missing`" in text
    assert "## Paper 001:" in text and "## Paper 004:" in text and "## Paper 002:" in text
    assert "Paper's claims: 3 claims: 1 holds, 1 inconclusive, 1 by construction." in text
    # relative links to tables and inline figures; the key table (paper column) inlined, others linked
    assert "[claims](51_recognize_fake/tables/claims.md)" in text
    assert "![curve](51_recognize_fake/figures/curve.png)" in text
    assert "**[accuracy](21_timbre_fake/tables/accuracy.md)**" in text and "| CNN | 97 | 0.62 |" in text
    assert "tables: [claims](21_timbre_fake/tables/claims.md), [timings](21_timbre_fake/tables/timings.md)" in text
    # data lines with fallbacks, executed notebook links
    assert "train: `src-21_timbre_fake` (rendered) — **fallbacks**: no real data: synthetic stand-in" in text
    assert "[21_timbre_fake.ipynb](executed/21_timbre_fake.ipynb)" in text
    assert "weighs" in text and "MB" in text


def test_stale_full_profile_marked(results, repo):
    text = write_report(results, repo=repo).read_text()
    sec21 = text.split("### 21_timbre_fake")[1].split("###")[0]
    sec51 = text.split("### 51_recognize_fake")[1].split("###")[0]
    assert "full profile (current: same notebook and paperlib hashes" in sec21
    assert "full profile (**stale**: notebook changed since this run" in sec51
    assert "[accuracy](full/51_recognize_fake/tables/accuracy.md)" in sec51
    # a paperlib change makes both stale
    (repo / "paperlib" / "core.py").write_text("x = 2\n")
    assert staleness(json.loads((results / "full" / "21_timbre_fake" / "provenance.json").read_text()),
                     "21_timbre_fake", repo) == ("stale", "paperlib changed since this run")


def test_staleness_git_fallback(tmp_path):
    r = tmp_path / "gitrepo"
    (r / "nbs").mkdir(parents=True); (r / "paperlib").mkdir()
    (r / "nbs" / "51_x.ipynb").write_text("{}"); (r / "paperlib" / "a.py").write_text("a = 1\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=r, check=True)
    subprocess.run([*git, "add", "-A"], cwd=r, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=r, check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=r, capture_output=True, text=True).stdout.strip()
    assert staleness({"git": {"commit": sha, "dirty": False}}, "51_x", r)[0] == "current"
    assert staleness({"git": {"commit": sha, "dirty": True}}, "51_x", r)[0] == "unknown"
    (r / "paperlib" / "a.py").write_text("a = 2\n")
    assert staleness({"git": {"commit": sha, "dirty": False}}, "51_x", r)[0] == "stale"
    assert staleness({"git": {"commit": "f" * 40}}, "51_x", r)[0] == "unknown"
    assert staleness({}, "51_x", r)[0] == "unknown"


def test_executed_notebook_problems(tmp_path, results, repo):
    good, bad, nofig = tmp_path / "good.ipynb", tmp_path / "bad.ipynb", tmp_path / "nofig.ipynb"
    good.write_text(_nb([PNG_FIGURE, {"output_type": "stream", "name": "stdout", "text": "done\n"}]))
    bad.write_text(_nb([FRAME, PNG_FIGURE]))
    nofig.write_text(_nb([TEXT_FIGURE, {"output_type": "error", "ename": "ValueError", "evalue": "boom", "traceback": []}]))
    assert executed_notebook_problems(good) == []
    p = executed_notebook_problems(bad)
    assert len(p) == 1 and p[0].startswith("progress-bar frames in 1 output(s)")
    p = executed_notebook_problems(nofig)
    assert any("without an image/png" in x for x in p) and any("ValueError: boom" in x for x in p)
    assert executed_notebook_problems(good, max_mb=1e-6)[0].endswith("MB (over 1e-06 MB)")
    text = write_report(results, repo=repo).read_text()
    assert "2 executed notebook(s)" in text and "- `51_recognize_fake`: progress-bar frames" in text
    assert "- `21_timbre_fake`" not in text


def test_glance_and_helpers(results):
    g = results_at_a_glance(results, report_link="results/README.md")
    assert "[details](results/README.md#paper-004)" in g and "[details](results/README.md#paper-001)" in g
    assert "3 claims: 1 holds, 1 inconclusive, 1 by construction" in g and "2 claims: 1 holds, 1 not testable here" in g
    assert paper_columns(["model", "paper", "Paper ABS_rel", "method (paper)", "papers"]) == ["paper", "Paper ABS_rel"]
    assert 0 < folder_size_mb(results) < 0.1 and folder_size_mb(results / "absent") == 0.0


def test_readme_glance_block_is_replaced_between_its_markers_only(results, tmp_path):
    from paperlib.report import GLANCE_END, GLANCE_START, update_readme_glance
    readme = tmp_path / "README.md"
    readme.write_text(f"# Study\n\nbefore\n{GLANCE_START}\nstale table\n{GLANCE_END}\nafter\n")
    assert update_readme_glance(readme, results, "results/README.md")
    text = readme.read_text()
    assert "stale table" not in text and text.startswith("# Study\n\nbefore\n") and text.endswith(f"{GLANCE_END}\nafter\n")
    assert "(results/README.md#paper-" in text
    assert not update_readme_glance(readme, results, "results/README.md")          # regenerated: unchanged
    readme.write_text("# no markers\n")
    with pytest.raises(DataError, match="results-at-a-glance"):
        update_readme_glance(readme, results)
