"""A non-editable install carries every module and the properties/ YAML files."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_holds_every_module_and_every_properties_file(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO_ROOT)],
        check=True, capture_output=True,
    )
    wheel = next(tmp_path.glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "recbole_disentangle").rglob("*.py")}
    assert modules <= names, f"missing from the wheel (add the package to pyproject.toml): {sorted(modules - names)}"
    yaml_files = {"recbole_disentangle/properties/" + p.relative_to(REPO_ROOT / "properties").as_posix()
                  for p in (REPO_ROOT / "properties").rglob("*.yaml")}
    assert yaml_files <= names, sorted(yaml_files - names)

    # Installed from the wheel (outside the checkout), the package finds its properties.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = "import recbole_disentangle.config as c; print(c.properties_dir())"
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(site)},
                         capture_output=True, text=True, check=True).stdout.strip()
    assert Path(out) == site / "recbole_disentangle" / "properties"
    assert (Path(out) / "model" / "MacridVAE.yaml").is_file()


def test_install_metadata_says_what_works():
    """pip's own checks tell a user what cannot work: the Python range recbole's ray pin allows, and
    an extra for every searcher --search_alg offers."""
    import tomllib

    from recbole_disentangle.tuning import SEARCH_ALGS

    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10,<3.12"  # ray<=2.6.3 (recbole 1.2.1's pin) has no 3.12 wheel
    extras = project["optional-dependencies"]
    needs = {"tpe": "optuna", "optuna": "optuna", "hyperopt": "hyperopt"}  # random and grid need nothing more
    for alg in SEARCH_ALGS:
        if alg in needs:
            assert any(req.startswith(needs[alg]) for reqs in extras.values() for req in reqs), alg
    assert {"tpe", "hyperopt"} <= set(extras) and "hyperopt" in extras["test"][1]


def test_the_analysis_package_imports_without_the_analysis_extra():
    """matplotlib is optional (the analysis extra): AD-DRL's explanations and MacridVAE's control live
    in the analysis package and must import without it; only drawing a picture needs it."""
    import subprocess
    import sys

    script = ("import sys; sys.modules['matplotlib'] = None  # as if not installed\n"
              "import recbole_disentangle.analysis, recbole_disentangle.analysis.control\n"
              "from recbole_disentangle.analysis.control import explain_factors, rerank_by_factors\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
