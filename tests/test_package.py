"""The package as a user installs it: a (non-editable) wheel holds every module nbdev writes, subpackages included,
and each of them imports."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
                       capture_output=True, text=True)
    if r.returncode != 0 and "No module named" in r.stderr and "setuptools" in r.stderr:
        pytest.skip("setuptools is not installed in this environment (needed to build the wheel offline)")
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = out.glob("paperlib-*.whl")
    site = out / "site"
    zipfile.ZipFile(whl).extractall(site)
    return site


def test_the_wheel_holds_every_module_of_the_source_tree(wheel_dir):
    source = {p.relative_to(ROOT).as_posix() for p in (ROOT / "paperlib").rglob("*.py")}
    built = {p.relative_to(wheel_dir).as_posix() for p in (wheel_dir / "paperlib").rglob("*.py")}
    assert source == built, f"missing from the wheel: {sorted(source - built)}; extra: {sorted(built - source)}"


def test_every_module_imports_from_the_installed_wheel(wheel_dir):
    modules = sorted(".".join(p.relative_to(wheel_dir).with_suffix("").parts).removesuffix(".__init__")
                     for p in (wheel_dir / "paperlib").rglob("*.py"))
    code = ("import importlib, paperlib, sys\n"
            f"assert paperlib.__file__.startswith({str(wheel_dir)!r}), paperlib.__file__\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(len(sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=wheel_dir,
                       env={"PYTHONPATH": str(wheel_dir), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-3000:]
