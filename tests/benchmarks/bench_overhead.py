"""Benchmark: the fixed cost of one notebook job of `paperlib reproduce`, apart from the notebook's own work.

Measures, each in a fresh Python process (the way a Snakemake job starts):
- `import papermill` with and without jsonschema's IRI grammar (`rfc3987_syntax`, which `paperlib.workflow`'s job
  entry point marks absent);
- librosa's first `stft` + `melspectrogram` + `onset_detect` with a cold and with a warm numba cache folder (jobs run one
  at a time share one folder, `<cache>/numba/serial/`; side by side each job has its own);
- a whole job of a notebook that does nothing (`00_core`-like: kernel start, imports, one `start_run`), through
  `paperlib.reproduce.run_notebook`.

Not collected by pytest. Run from the repository root (no timing asserts: it prints):

    .venv/bin/python tests/benchmarks/bench_overhead.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIBROSA = ("import numpy as np, librosa; y = np.random.default_rng(0).standard_normal(22050).astype(np.float32); "
           "librosa.stft(y); librosa.feature.melspectrogram(y=y, sr=22050); librosa.onset.onset_detect(y=y, sr=22050)")


def seconds(code: str, env: dict | None = None, repeats: int = 1) -> float:
    "Median wall time of `python -c code` in a fresh process (interpreter start included)."
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, **(env or {})},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def empty_job(folder: Path) -> float:
    "Wall time of `run_notebook` on a notebook that only starts and commits a run (kernel start, imports, papermill)."
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
    nbs = folder / "nbs"; nbs.mkdir(parents=True, exist_ok=True)
    cell = new_code_cell('profile, seed, results_dir = "smoke", 0, None'); cell.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[cell, new_code_cell("from paperlib.core import start_run\n"
                                                 "run = start_run('10_empty', profile=profile, seed=seed, results_dir=results_dir)\n"
                                                 "run.commit();")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, nbs / "10_empty.ipynb")
    code = ("import sys, time; sys.modules['rfc3987_syntax'] = None; t0 = time.perf_counter()\n"
            "from pathlib import Path; from paperlib.reproduce import run_notebook\n"
            f"run_notebook(Path({str(nbs / '10_empty.ipynb')!r}), {{'results_dir': {str(folder / 'results')!r}}}, Path({str(folder / 'executed')!r}))\n"
            "print(time.perf_counter() - t0)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    rows = {}
    rows["python -c 'import papermill'"] = seconds("import papermill", repeats=a.repeats)
    rows["... with rfc3987_syntax marked absent"] = seconds("import sys; sys.modules['rfc3987_syntax'] = None; import papermill",
                                                            repeats=a.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        env = {"NUMBA_CACHE_DIR": str(Path(tmp) / "numba")}
        rows["librosa stft + mel + onsets, cold numba cache"] = seconds(LIBROSA, env)
        rows["... warm numba cache (the same folder again)"] = seconds(LIBROSA, env, repeats=a.repeats)
        rows["a notebook job that does nothing (run_notebook)"] = empty_job(Path(tmp) / "job")
    width = max(map(len, rows))
    for k, v in rows.items(): print(f"{k:<{width}}  {v:6.2f} s")
    print(json.dumps({k: round(v, 2) for k, v in rows.items()}))


if __name__ == "__main__":
    main()
