"""benchmarks/compare_commits.py: two commits' epoch times, interleaved."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
import compare_commits  # noqa: E402


def test_settings_parse_as_yaml_values_and_paths_resolve_where_you_stand(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = compare_commits.parse_settings(["--epochs=3", "--data_path=data", "--similarity=cosine", "--beta=0.2"])
    assert settings == {"epochs": 3, "data_path": str(tmp_path / "data"), "similarity": "cosine", "beta": 0.2}
    with pytest.raises(SystemExit, match="--key=value"):
        compare_commits.parse_settings(["epochs"])


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs the git checkout")
def test_one_round_of_the_same_commit_reports_both_ratios():
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "compare_commits.py"), "--base", "HEAD", "--head", "HEAD",
         "--model", "MacridVAE", "--dataset", "ml-100k", "--rounds", "1", "--epochs", "1", "--",
         "--train_batch_size=500", "--embedding_size=16"],
        capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "round 1/1 base" in done.stdout and "round 1/1 head" in done.stdout
    assert "training epoch: base min" in done.stdout and "ratio head / base" in done.stdout
    # the temporary worktrees are gone
    listed = subprocess.run(["git", "-C", str(REPO), "worktree", "list"], capture_output=True, text=True).stdout
    assert "compare-commits-" not in listed
