"""The drift check (paperlib.drift): regenerated tables against the committed ones, on small results folders and a
tiny git repository written in tmp_path; and the lock's hash in every provenance.json (paperlib.core.Run.provenance)."""
import hashlib
import json
import shutil
import subprocess

import pytest

from paperlib import core, drift

HEADER = "method,accuracy,interval,verdict,clips,training time (s)\n"
ROWS = ['K-means,0.488,"[42.40, 54.80] %",holds,250,3.2', 'VAE,0.412,"0.481 [0.4, 0.5]",inconclusive,250,41.0']


def table(*rows):
    return HEADER + "\n".join(rows) + "\n"


def write_results(root, csv, stem="33_uvac_table1", name="table1", provenance='{"wall_time_s": 1.0}'):
    (root / stem / "tables").mkdir(parents=True, exist_ok=True)
    (root / stem / "tables" / f"{name}.csv").write_text(csv)
    if provenance is not None: (root / stem / "provenance.json").write_text(provenance)
    return root


def check(tmp_path, regenerated_csv, committed_csv=table(*ROWS), **kw):
    ref = write_results(tmp_path / "ref", committed_csv)
    new = write_results(tmp_path / "new", regenerated_csv, provenance='{"wall_time_s": 2.0}')
    return drift.drift(new, reference=ref, notebooks=["33_uvac_table1"], **kw)


def test_identical_tables_pass(tmp_path):
    report = check(tmp_path, table(*ROWS))
    assert report.ok and report.tables == 1, report.differences
    assert drift.main(["--results", str(tmp_path / "new"), "--reference", str(tmp_path / "ref"),
                       "--notebooks", "33_uvac_table1"]) == 0


def test_float_within_printing_precision_passes_and_outside_fails_naming_everything(tmp_path):
    assert check(tmp_path / "a", table(ROWS[0], ROWS[1].replace("0.412", "0.412001"))).ok   # one unit of the 6th digit
    report = check(tmp_path / "b", table(ROWS[0], ROWS[1].replace("0.412", "0.425")))
    assert len(report.differences) == 1
    msg = report.differences[0]
    for part in ["33_uvac_table1/tables/table1.csv", "row 2", "VAE", "column 'accuracy'", "'0.412'", "'0.425'",
                 "tolerance ±0.000001"]:
        assert part in msg, (part, msg)
    assert drift.main(["--results", str(tmp_path / "b" / "new"), "--reference", str(tmp_path / "b" / "ref"),
                       "--tables-only"]) == 1


def test_verdict_and_count_changes_fail_exactly(tmp_path):
    verdict = check(tmp_path / "v", table(ROWS[0], ROWS[1].replace("inconclusive", "holds")))
    assert len(verdict.differences) == 1 and "column 'verdict'" in verdict.differences[0]
    assert "'inconclusive'" in verdict.differences[0] and "'holds'" in verdict.differences[0]
    count = check(tmp_path / "c", table(ROWS[0], ROWS[1].replace(",250,", ",251,")))
    assert len(count.differences) == 1 and "column 'clips'" in count.differences[0] and "exactly" in count.differences[0]


def test_timing_column_change_passes(tmp_path):
    assert check(tmp_path, table(ROWS[0].replace("3.2", "9.7"), ROWS[1])).ok
    assert drift.column_kind("training time (s)", ["3.2"]) == "timing"
    assert drift.column_kind("tau measured (s)", ["0.012"]) == "float"   # a physical quantity in seconds is compared
    assert drift.column_kind("p (Kruskal-Wallis)", ["0.01"]) == "float"


def test_numbers_inside_interval_strings(tmp_path):
    # one unit of the last printed decimal passes; two fail; the text around the numbers must not change
    assert check(tmp_path / "a", table(ROWS[0].replace("54.80", "54.81"), ROWS[1].replace("0.481", "0.482"))).ok
    far = check(tmp_path / "b", table(ROWS[0].replace("54.80", "54.83"), ROWS[1]))
    assert len(far.differences) == 1 and "54.80 -> 54.83" in far.differences[0] and "±0.01" in far.differences[0]
    assert "column 'interval'" in far.differences[0] and "row 1" in far.differences[0]
    text = check(tmp_path / "c", table(ROWS[0].replace("] %", "] pp"), ROWS[1]))
    assert len(text.differences) == 1 and "text around the numbers" in text.differences[0]
    assert drift.compare_cell("text", "n = 250", "n = 251") is not None   # integers in text are exact


def test_missing_table_row_or_column_fails(tmp_path):
    rows = check(tmp_path / "r", table(ROWS[0]))
    assert len(rows.differences) == 1 and "2 rows committed, 1 regenerated" in rows.differences[0]
    assert "VAE" in rows.differences[0]
    cols = check(tmp_path / "c", table(*ROWS).replace(",training time (s)", ",train_s").replace(",41.0", ",41"))
    assert any("missing from the regenerated table" in d for d in cols.differences)
    assert any("added in the regenerated table" in d for d in cols.differences)
    ref = write_results(tmp_path / "t" / "ref", table(*ROWS))
    write_results(ref, table(*ROWS), name="claims")
    new = write_results(tmp_path / "t" / "new", table(*ROWS), provenance='{"wall_time_s": 3.0}')
    gone = drift.drift(new, reference=ref, notebooks=["33_uvac_table1"])
    assert gone.differences == ["33_uvac_table1/tables/claims.csv: committed, but missing from the regenerated results"]


def test_provenance_must_be_rewritten(tmp_path):
    ref = write_results(tmp_path / "ref", table(*ROWS))
    new = tmp_path / "new"
    shutil.copytree(ref, new)
    same = drift.drift(new, reference=ref, notebooks=["33_uvac_table1"])
    assert len(same.differences) == 1 and "identical to the committed one" in same.differences[0]
    assert drift.drift(new, reference=ref, check_provenance=False).ok
    (new / "33_uvac_table1" / "provenance.json").unlink()
    assert "missing from the regenerated results" in drift.drift(new, reference=ref, notebooks=["33_uvac_table1"]).differences[0]
    assert drift.drift(new, reference=ref, notebooks=["10_touch_data"]).ok   # no results on either side: nothing to check


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def test_against_a_git_revision(tmp_path):
    repo = tmp_path / "repo"
    write_results(repo / "results", table(*ROWS), provenance=json.dumps({"git": {"commit": "0" * 40}}))
    write_results(repo / "results" / "full", table(*ROWS))          # never compared
    git(repo, "init", "-q")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "results")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "results")
    head = git(repo, "rev-parse", "HEAD")
    committed = drift.git_results_files("HEAD", repo / "results")
    assert set(committed) == {"33_uvac_table1/tables/table1.csv", "33_uvac_table1/provenance.json"}
    assert committed["33_uvac_table1/tables/table1.csv"].decode() == table(*ROWS)
    # a regenerated run at this commit: the working tree's table moved, its provenance names the checkout's commit
    write_results(repo / "results", table(ROWS[0], ROWS[1].replace("0.412", "0.5")),
                  provenance=json.dumps({"git": {"commit": head}}))
    write_results(repo / "results" / "full", table(ROWS[0].replace("0.488", "0.9"), ROWS[1]))
    report = drift.drift(repo / "results", against="HEAD", notebooks=["33_uvac_table1"])
    assert len(report.differences) == 1 and "column 'accuracy'" in report.differences[0], report.differences
    assert drift.main(["--results", str(repo / "results"), "--notebooks", "33_uvac_table1"]) == 1
    # provenance written by another commit than the checkout's: stale
    (repo / "results" / "33_uvac_table1" / "provenance.json").write_text(json.dumps({"git": {"commit": "1" * 40}}))
    stale = drift.drift(repo / "results", against="HEAD", notebooks=["33_uvac_table1"]).differences
    assert any("not by this checkout" in d for d in stale)
    with pytest.raises(core.ConfigError):
        drift.git_results_files("no-such-rev", repo / "results")


def test_provenance_records_the_lock_hash(tmp_path, monkeypatch):
    run = core.start_run("00_core", profile="smoke", device="cpu", results_dir=tmp_path / "results")
    monkeypatch.setattr(core, "repo_root", lambda: tmp_path)
    assert run.provenance()["lock"] is None                        # no lock file: an installed library
    (tmp_path / "requirements.lock").write_text("numpy==2.4.6\n")
    assert run.provenance()["lock"] == {"file": "requirements.lock",
                                        "sha256": hashlib.sha256(b"numpy==2.4.6\n").hexdigest()}


def test_a_claim_decided_on_timings_compares_its_text_and_verdict_not_its_numbers(tmp_path):
    head = "claim,origin,ours,interval,verdict,evidence\n"
    row = 'CNN takes more than twice as long as the NN,paper,97 x (CNN time),"[90, 107] x",holds,{ev}'
    committed = head + row.format(ev="training_times") + "\n"
    slower = head + row.replace("97 x", "100 x").replace("[90, 107]", "[84, 124]").format(ev="training_times") + "\n"
    assert check(tmp_path / "t", slower, committed).ok                                # a timing claim: numbers move freely
    flipped = head + row.replace("holds", "does not hold").format(ev="training_times") + "\n"
    assert not check(tmp_path / "f", flipped, committed).ok                          # ... its verdict does not
    reworded = head + row.replace("CNN time", "NN time").format(ev="training_times") + "\n"
    assert not check(tmp_path / "w", reworded, committed).ok                         # ... nor its text
    accuracy = head + row.format(ev="test_accuracy") + "\n"                           # any other claim: numbers compared
    assert not check(tmp_path / "a", accuracy.replace("97 x", "100 x"), accuracy).ok
