"""The scale benchmark: its generated shapes (small) and a tiny end-to-end run."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import scale  # noqa: E402
import scale_data  # noqa: E402


def test_scaled_shapes_keep_interactions_per_user():
    full = scale_data.SHAPES["ml-20m"]
    assert (full.users, full.items, full.interactions) == (136_677, 20_108, 10_000_000)
    small = full.scaled(0.01)
    assert (small.users, small.items) == (1367, 201)
    assert small.interactions == 100_000  # users and interactions shrink alike: 73 per user stay
    kept = full.scaled(0.01, item_scale=1)
    assert (kept.users, kept.items, kept.interactions) == (1367, 20_108, 100_000)
    with pytest.raises(ValueError):
        full.scaled(0)


def test_generated_matrix_has_the_shape_its_minimum_and_a_popularity_tail():
    shape = scale_data.Shape("t", users=400, items=3000, interactions=400 * 30, user_sigma=1.6, item_gini=0.9)
    matrix = scale_data.generate(shape, seed=3)
    per_user = np.diff(matrix.indptr)
    assert matrix.shape == (400, 3000)
    assert matrix.nnz == shape.interactions  # distinct (user, item) pairs, exactly as many as asked
    assert per_user.min() >= shape.min_per_user
    assert per_user.max() > 5 * np.median(per_user)  # a heavy tail of active users
    assert set(np.unique(matrix.data)) == {1.0}
    assert 0.6 < scale_data.gini(matrix.sum(axis=0).A1) <= 0.9  # a long tail, flattened by heavy users
    assert (scale_data.generate(shape, seed=3) != matrix).nnz == 0  # a seed fixes the data


def test_zipf_exponent_reaches_the_gini_asked_for():
    for target in (0.5, 0.9):
        a = scale_data.zipf_exponent_for_gini(1000, target)
        assert scale_data.gini(np.arange(1, 1001, dtype=float) ** -a) == pytest.approx(target, abs=1e-6)


def test_atomic_file_reads_back(tmp_path):
    matrix = scale_data.generate(scale_data.Shape("t", 30, 50, 300), seed=0)
    scale_data.write_atomic(matrix, tmp_path, "t")
    lines = (tmp_path / "t" / "t.inter").read_text().splitlines()
    assert lines[0] == "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    assert len(lines) == 1 + matrix.nnz
    pairs = {tuple(map(int, line.split("\t")[:2])) for line in lines[1:]}
    coo = matrix.tocoo()
    assert pairs == set(zip((coo.row + 1).tolist(), (coo.col + 1).tolist()))


@pytest.mark.slow
def test_tiny_run_writes_a_section_with_every_model(tmp_path):
    out = tmp_path / "results.md"
    args = ["--shapes", "catalog-200k", "--scale", "0.0005", "--item_scale", "0.01", "--models", "MacridVAE:kfac=2,embedding_size=8",
            "MultiVAE", "--epochs", "1", "--workdir", str(tmp_path / "work"), "--out", str(out), "--name", "tiny"]
    assert scale.main(args) == 0
    text = out.read_text()
    assert "<!-- benchmark:tiny -->" in text and "Machine:" in text and "Command: `OMP_NUM_THREADS=1 python benchmarks/scale.py" in text
    rows = [line for line in text.splitlines() if line.startswith("| catalog-200k |")]
    # Users shrink by --scale, the catalog by --item_scale; the table gives what RecBole loaded
    # (the items that occur, at most the 2,000 generated).
    loaded = [row.split(" | ")[1].rsplit(", ", 1)[0].split(" x ") for row in rows]
    assert all(users == "50" and 0 < int(items.replace(",", "")) <= 2000 for users, items in loaded)
    assert [row.split(" | ")[2] for row in rows] == ["MacridVAE:kfac=2,embedding_size=8", "MultiVAE"]
    assert not any("failed" in row for row in rows)


def test_paper_protocol_runs_on_generated_data(tmp_path, monkeypatch):
    """The generated ratings are all 1: --protocol paper keeps them (no rating threshold)."""
    monkeypatch.chdir(tmp_path)
    assert scale.protocol_settings("paper") == ["--eval_protocol=paper", "--paper_rating_threshold=~"]
    scale_data.write_atomic(scale_data.generate(scale_data.Shape("t", 60, 80, 60 * 12), seed=0), tmp_path / "data", "t")
    job = {"model": "MacridVAE", "settings": ["--kfac=2", "--embedding_size=8", "--paper_heldout_users=10"],
           "dataset": "t", "data_path": str(tmp_path / "data"), "device": "cpu", "seed": 1, "epochs": 1,
           "epoch_budget": 0, "eval_budget": 0, "workdir": str(tmp_path), "protocol": "paper"}
    result = scale.run_model(job)
    assert result["ok"], result.get("error")
    assert result["users"] == 60 and result["prep_s"] > 0


def test_epoch_ratios_pair_the_runs_of_each_rep():
    def row(label, seconds):
        return {"shape": "ml-100k", "device": "cpu", "label": label,
                "runs": [{"ok": True, "epochs": [{"s": 9.0}, {"s": s}]} for s in seconds]}

    lines = scale.epoch_ratios([row("A", [1.0, 2.0, 3.0]), row("B", [2.0, 2.0, 2.0])])
    assert lines[1] == "- ml-100k, cpu: seconds per epoch, A / B = 0.50 / 1.00 (min / median over the reps)"


def test_real_data_sets_keep_their_own_rating_threshold():
    assert scale.protocol_settings("paper", generated=False) == ["--eval_protocol=paper"]
    parsed = scale.build_parser().parse_args(["--shapes", "--datasets", "ml-100k", "ml-latest-small=dataset_atomic"])
    sources = list(scale.data_sources(parsed, 1.0, Path("unused"), []))
    assert [(name, dataset) for name, dataset, _, _ in sources] == [("ml-100k", "ml-100k"), ("ml-latest-small", "ml-latest-small")]
    assert sources[0][2] is None and sources[1][2] == str(Path("dataset_atomic").resolve())
