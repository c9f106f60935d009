"""The scale benchmark: its generated shapes (small) and a tiny end-to-end run."""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import flops  # noqa: E402
import scale  # noqa: E402
import scale_data  # noqa: E402
from recbole.model.general_recommender.multivae import MultiVAE  # noqa: E402

from recbole_disentangle.config import Config  # noqa: E402
from recbole_disentangle.model.macridvae import MacridVAE  # noqa: E402


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


def _macridvae_step_flops(users: int, items: int) -> int:
    """A MacridVAE step's dense products (K = 3, d = 4, f_nn d -> 5 -> 2d), 2 m n k each. Forward:
    s_ik = cos(h_i, m_k), (items x d) @ (d x K); f_nn's layers on the (users * K) concept rows; the
    decoder cos(z_u^(k), h_i), (users * K x d) @ (d x items). Backward: each product's two operands
    need a gradient (h, m, f_nn's weights and its input, z), two products of the forward's size
    each: 3 x the forward. The encoder's sparse product x_u c_k @ t is not counted."""
    k, d = 3, 4
    forward = 2 * items * d * k + sum(2 * users * k * a * b for a, b in [(d, 5), (5, 2 * d)]) + 2 * users * k * d * items
    return 3 * forward


def _multivae_step_flops(users: int, items: int) -> int:
    """A MultiVAE step's dense products (items -> 6 -> 2 * 2 encoder, 2 -> 6 -> items decoder): each
    Linear's forward (2 m n k), and backward the gradients of its weight and its input, except the
    first layer's input (the rating matrix needs none): 3 x the forward less that product."""
    layers = [(items, 6), (6, 4), (2, 6), (6, items)]
    return 3 * sum(2 * users * a * b for a, b in layers) - 2 * users * items * 6


@pytest.mark.parametrize("model_class, settings, analytic", [
    (MacridVAE, ["--kfac=3", "--embedding_size=4", "--encoder_hidden_size=[5]"], _macridvae_step_flops),
    (MultiVAE, ["--mlp_hidden_size=[6]", "--latent_dimension=4"], _multivae_step_flops),
])
def test_counted_flops_of_a_step_are_the_analytic_count(model_class, settings, analytic):
    users, batch = 24, 8
    dataset = scale_data.ArrayDataset.with_padding(scale_data.generate(scale_data.Shape("t", users, 40, users * 8), seed=0))
    config = Config(model_class.__name__, "t", None, None, [*settings, "--use_gpu=false", "--state=WARNING"])
    model = model_class(config, dataset)
    batches = scale_data.UserIdBatches(np.arange(1, users + 1), batch)  # 3 full batches of 8 users
    counted = flops.count_epoch_flops(model, batches, "cpu", steps=2)
    expected = analytic(batch, dataset.item_num)  # item_num: the 40 items and RecBole's padding item 0
    assert counted == {"per_step": expected, "steps": 2, "per_epoch": 3 * expected}


@pytest.mark.parametrize("model", ["MacridVAE", "MultiVAE"])
def test_counting_flops_leaves_the_run_unchanged(tmp_path, model):
    """Counting runs training steps (MacridVAE's anneal_step, MultiVAE's update counter, Gumbel noise,
    dropout, the loader's shuffle): the timed epochs' losses and the metrics must be those of a run
    without counting, to the last bit."""
    scale_data.write_atomic(scale_data.generate(scale_data.Shape("t", 60, 80, 60 * 12), seed=0), tmp_path / "data", "t")
    job = {"model": model, "settings": ["--train_batch_size=16"], "dataset": "t", "data_path": str(tmp_path / "data"),
           "device": "cpu", "seed": 1, "epochs": 2, "epoch_budget": 0, "eval_budget": 0, "workdir": str(tmp_path)}
    plain, counted = scale.run_model({**job, "flop_steps": 0}), scale.run_model({**job, "flop_steps": 3})
    assert plain["ok"] and counted["ok"], (plain.get("error"), counted.get("error"))
    assert "flops" not in plain and counted["flops"]["steps"] == 3 and counted["flops"]["per_epoch"] > 0
    assert [e["loss"] for e in counted["epochs"]] == [e["loss"] for e in plain["epochs"]]
    assert counted["eval"]["metrics"] == plain["eval"]["metrics"] and plain["eval"]["metrics"]


def test_flop_rates_against_the_peak_the_device_has():
    runs = [{"flops": {"per_epoch": 6e12}}, {"flops": {"per_epoch": 6e12}}]
    # FLOP/s at the min (2 s) and at the median (3 s) of the table's seconds per epoch.
    h200 = flops.fp32_peak("cuda", [{"device_name": "NVIDIA H200"}], {})
    assert h200 == {"tflops": 67.0, "source": "NVIDIA H200, datasheet"}
    assert flops.flop_cells(runs, [2.0, 3.0, 4.0], h200) == ["6,000.0", "3 / 2", "4.48 / 2.99"]
    # No peak is guessed: an unlisted GPU, a CPU, runs without a device name (older JSON).
    assert flops.fp32_peak("cuda", [{"device_name": "NVIDIA H200 NVL"}], {}) is None
    assert flops.fp32_peak("cpu", runs, {}) is None and flops.fp32_peak("cuda", runs, {}) is None
    assert flops.flop_cells(runs, [2.0], None) == ["6,000.0", "3", "–"]
    given = dict(scale.build_parser().parse_args(["--peak_tflops", "cpu=1.5", "67"]).peak_tflops)
    assert flops.fp32_peak("cpu", runs, given) == {"tflops": 1.5, "source": "--peak_tflops"}
    assert flops.fp32_peak("cuda", runs, given)["tflops"] == 67.0
    for wrong in ("cuda=fast", "gpu=67", "0"):  # a typo must not leave a device without its peak unnoticed
        with pytest.raises(argparse.ArgumentTypeError, match="DEVICE=TFLOPS"):
            flops.peak_option(wrong)


def test_render_reads_json_written_before_flops_were_counted(tmp_path, capsys):
    old_run = {"ok": True, "users": 943, "items": 1682, "interactions": 100000, "prep_s": 1.0, "peak_rss_mb": 500.0,
               "epochs": [{"s": 2.0, "cut": False, "batches": 10, "of": 10}], "eval": {"s": 1.0, "cut": False}}
    saved = {"header": ["## old", ""], "reps": 1,
             "rows": [{"shape": "ml-100k", "label": "MultiVAE", "device": "cuda", "runs": [old_run]}]}
    (tmp_path / "old.json").write_text(json.dumps(saved))
    assert scale.main(["--render", str(tmp_path / "old.json")]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| ml-100k |"))
    assert row.split(" | ")[8:11] == ["–", "–", "–"]  # GFLOP / epoch, TFLOP/s, % of FP32 peak
