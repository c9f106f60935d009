"""The analysis tells the truth about concepts (issue 13): the mode of p(c_i) as an item's concept,
alignment that is computed or loudly not, K-means beside the prototypes, named concepts, a
dimension shift that shows, checked concept and dimension numbers, circular factors."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

from recbole_disentangle.analysis import AnalysisWarning, analyse, concept_maps, control
from recbole_disentangle.analysis.__main__ import main
from recbole_disentangle.analysis.concepts import legend_label
from recbole_disentangle.analysis.representations import item_concepts, model_view
from recbole_disentangle.analysis.traversal import circular_linear_correlation, circular_monotonicity
from recbole_disentangle.errors import ConfigError
from recbole_disentangle.quick_start import load_data_and_model

pytestmark = pytest.mark.slow  # each module trains two tiny models (seconds)


@pytest.fixture(scope="module")
def loaded(tiny_model_file):
    config, model, dataset, *_ = load_data_and_model(str(tiny_model_file), map_location="cpu")
    return config, model, dataset


def _mode(model) -> np.ndarray:
    with torch.no_grad():
        return model.concept_logits().argmax(dim=-1).numpy()


# ---- 6. hard concepts are the mode, whatever test_assignment says --------------------------
def test_item_concepts_are_the_mode_even_for_a_softmax_model(loaded, tiny_model_file, tmp_path):
    _, model, _ = loaded
    model.eval()
    assert model.test_assignment == "softmax"
    with torch.no_grad():
        soft = model.log_concepts().exp()
    assert soft.max(dim=-1).values.min() < 0.99  # the test-time c_i is not one-hot here
    mode = _mode(model)
    assert np.array_equal(item_concepts(model), mode)
    view = model_view(model)
    assert np.array_equal(view.concepts, mode) and view.concepts.dtype.kind == "i"

    report = analyse(tiny_model_file, tmp_path, plots=False, tsne_iter=250)
    trained = np.flatnonzero(view.trained_items)
    sizes = np.bincount(mode[trained], minlength=3).tolist()
    assert report["alignment"]["concept_sizes"] == sizes  # counts of items, not sums of soft c_ik
    assert [c["size"] for c in report["concepts"]] == sizes
    tokens = list(_dataset_tokens(loaded))
    for entry in report["control"]["before"] + report["control"]["after"]:
        assert entry["item_concept"] == mode[tokens.index(entry["item"])]


def _dataset_tokens(loaded):
    _, _, dataset = loaded
    return [str(t) for t in dataset.field2id_token[dataset.iid_field]]


# ---- 1. K-means beside the prototypes, in the JSON and the summary --------------------------
def test_kmeans_alignment_is_reported_beside_the_prototypes(tiny_model_file, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["--model_file", str(tiny_model_file), "--out", str(out), "--no_plots"]) == 0
    printed = capsys.readouterr().out
    align = json.loads((out / "analysis.json").read_text())["alignment"]
    kmeans = align["kmeans"]
    assert kmeans["n_clusters"] == 3 and kmeans["space"] == "L2-normalised h"
    assert all(0 <= kmeans[key] <= 1 for key in ("nmi", "hungarian_accuracy")) and -1 <= kmeans["ari"] <= 1
    assert f"prototypes {{nmi: {align['nmi']:.4f}" in printed
    assert f"k-means on L2-normalised h {{nmi: {kmeans['nmi']:.4f}" in printed


# ---- 2. a category field that is missing: an error when named, a loud warning when not ------
def test_a_named_category_field_that_is_not_loaded_is_a_config_error(tiny_model_file, tiny_model_without_categories, tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"--category_field 'colour'.*no field 'colour'.*loaded fields: concept, factor_0"):
        analyse(tiny_model_file, tmp_path, category_field="colour", plots=False)
    # in the file but not loaded: the error says to load it
    with pytest.raises(ConfigError, match=r"'concept' is in planted.item but not loaded: add it to load_col"):
        analyse(tiny_model_without_categories, tmp_path, category_field="concept", plots=False)
    argv = ["--model_file", str(tiny_model_file), "--out", str(tmp_path / "x"), "--category_field", "colour", "--no_plots"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no field 'colour'" in err and "Traceback" not in err


def test_no_category_field_at_all_warns_loudly_and_says_how_to_give_one(tiny_model_without_categories, tmp_path, capsys):
    with pytest.warns(AnalysisWarning, match=r"alignment is not computed.*load_col.*--category_field"):
        report = analyse(tiny_model_without_categories, tmp_path / "a", plots=False, tsne_iter=250)
    align = report["alignment"]
    assert align["category_field"] is None and "--category_field" in align["not_computed"]
    assert "nmi" not in align and sum(align["concept_sizes"]) == report["n_items_analysed"]

    out = tmp_path / "b"
    assert main(["--model_file", str(tiny_model_without_categories), "--out", str(out), "--no_plots"]) == 0
    captured = capsys.readouterr()
    assert "alignment NOT COMPUTED" in captured.out and "alignment {}" not in captured.out
    assert "WARNING: concept-category alignment is not computed" in captured.err and "--category_field" in captured.err
    assert "not_computed" in json.loads((out / "analysis.json").read_text())["alignment"]


# ---- 3. concepts named by their categories and items, in the JSON and on the map ------------
def test_concepts_are_named_by_their_commonest_categories_and_top_items(loaded, tiny_model_file, tmp_path, monkeypatch):
    _, model, dataset = loaded
    legends = {}
    finish = concept_maps._finish

    def record_legend(ax, title, path, legend_title):
        legends[path.name] = ax.get_legend_handles_labels()[1]
        finish(ax, title, path, legend_title)

    monkeypatch.setattr(concept_maps, "_finish", record_legend)
    report = analyse(tiny_model_file, tmp_path, tsne_iter=250, max_users=30)

    view = model_view(model)
    trained = np.flatnonzero(view.trained_items)
    truth = np.array([str(dataset.field2id_token["concept"][v]) for v in dataset.item_feat["concept"].numpy()])
    tokens = _dataset_tokens(loaded)
    for entry in report["concepts"]:
        k = entry["concept"]
        members = trained[view.concepts[trained] == k]
        expected = Counter(truth[members]).most_common(3)
        assert [(t["category"], t["count"]) for t in entry["top_categories"]] == expected
        assert [t["share"] for t in entry["top_categories"]] == pytest.approx([n / len(members) for _, n in expected])
        tops = entry["top_items"]
        assert len(tops) == 5 and all(t["title"].startswith("c") for t in tops)  # planted titles: "c<k> f0=.."
        p = [t["p"] for t in tops]
        assert p == sorted(p, reverse=True)
        best = trained[np.argsort(-view.concept_probs[trained, k], kind="stable")[0]]
        assert p[0] == pytest.approx(view.concept_probs[best, k])
        assert all(tokens.index(t["item"]) in set(trained) for t in tops)
    labels = [legend_label(entry) for entry in report["concepts"]]
    assert legends["items_by_concept.png"] == labels
    top = report["concepts"][0]
    assert labels[0].startswith(f"concept 0 ({top['size']}): {top['top_categories'][0]['category']} ")
    assert top["top_items"][0]["title"][:20] in labels[0]


def test_legend_label_reads_like_a_name():
    entry = {"concept": 2, "size": 40,
             "top_categories": [{"category": "Drama", "count": 20, "share": 0.5}, {"category": "Comedy", "count": 10, "share": 0.25}],
             "top_items": [{"title": "Fargo (1996)"}, {"title": "A title far longer than the legend has room for"}, {"title": "x"}]}
    label = legend_label(entry)
    assert label.split("\n")[0] == "concept 2 (40): Drama 50%, Comedy 25%"
    assert label.split("\n")[1].startswith("e.g. Fargo (1996); A title far longer") and label.endswith("…")
    assert legend_label({"concept": 0, "size": 0, "top_items": []}) == "concept 0 (0)"


# ---- 4. the dimension shift shows in the list; out-of-range numbers are refused ------------
def test_a_dimension_shift_changes_the_list_without_muting_the_concept(loaded, tiny_model_file, tmp_path):
    _, model, dataset = loaded
    report = analyse(tiny_model_file, tmp_path, plots=False, control_dim=0, control_delta=2.0)
    shift = report["control"]
    k = shift["concept"]
    assert shift["concept_weight"] == 1.0 and shift["dimension"] == 0
    before, after = [r["item"] for r in shift["before"]], [r["item"] for r in shift["after"]]
    assert after != before and shift["changed"] > 0
    assert any(r["concept"] == k for r in shift["after"])  # concept k still scores: it was not muted
    # exactly the list of the shifted z_u, with no concept weights
    user = int(dataset.token2id(dataset.uid_field, shift["user"]))
    z = control.user_state(model, user)
    expected = control.recommend(model, user, 10, z=control.adjust_dimension(z, k, 0, delta=2.0))
    assert after == [str(dataset.field2id_token[dataset.iid_field][r.item]) for r in expected]
    # muting and shifting the same concept cannot show, and is refused
    with pytest.raises(ConfigError, match="weight 0"):
        analyse(tiny_model_file, tmp_path, plots=False, control_dim=0, control_delta=2.0, control_weight=0.0)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--control_concept", "9"], "--control_concept 9 is out of range: the model has K = 3 concepts, numbered 0..2"),
        (["--control_concept", "-1"], "--control_concept -1 is out of range"),
        (["--control_dim", "16", "--control_delta", "1"], "--control_dim 16 is out of range: the model has d = 16 dimensions per concept, numbered 0..15"),
        (["--traverse_user", "1", "--traverse_concept", "3"], "--traverse_concept 3 is out of range"),
        (["--traverse_item", "1", "--traverse_dim", "-2"], "--traverse_dim -2 is out of range"),
        (["--circular_factors", "colour"], "--circular_factors names colour"),
        (["--factor_fields", "factor_9"], "--factor_fields names factor_9"),
    ],
)
def test_out_of_range_numbers_are_errors_that_name_the_range(tiny_model_file, tmp_path, capsys, argv, message):
    assert main(["--model_file", str(tiny_model_file), "--out", str(tmp_path), "--no_plots", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_adjusting_a_dimension_outside_z_is_a_config_error(loaded):
    _, model, _ = loaded
    z = control.user_state(model, 1)
    with pytest.raises(ConfigError, match=r"concept 3 is out of range.*0\.\.2"):
        control.adjust_dimension(z, 3, 0, delta=1.0)
    with pytest.raises(ConfigError, match=r"dimension -1 is out of range.*0\.\.15"):
        control.adjust_dimension(z, 0, -1, delta=1.0)


# ---- 5. a circular factor is judged on the circle --------------------------------------------
def test_a_circular_factor_gets_circular_measures(tiny_model_file, tiny_model_without_categories, tmp_path):
    report = analyse(tiny_model_file, tmp_path / "a", plots=False, circular_factors=["factor_1:1"])
    _check_circular(report, "factor_1", 1.0)
    # declared by the data set's configuration (circular_fields), no flag needed
    with pytest.warns(AnalysisWarning):  # this data set loads no category field
        report = analyse(tiny_model_without_categories, tmp_path / "b", plots=False)
    _check_circular(report, "factor_1", 1.0)
    # without either, every factor is linear
    plain = analyse(tiny_model_file, tmp_path / "c", plots=False)
    assert not any("factor_circular_monotonicity" in t for t in plain["traversals"]) and "circular_factor_traversals" not in plain


def _check_circular(report, name, period):
    walks = [t for t in report["traversals"] if t.get("factor") == name]
    linear = [t for t in report["traversals"] if t.get("factor") not in (None, name)]
    assert walks and linear
    for walk in walks:
        values = [r["h_j"] for r in walk["retrieved"]]
        assert walk["factor_circular_period"] == period
        assert walk["factor_circular_monotonicity"] == pytest.approx(circular_monotonicity(values, walk["factor_values"], period))
        assert walk["factor_circular_linear"] == pytest.approx(circular_linear_correlation(values, walk["factor_values"], period))
        assert 0 <= walk["factor_rho_over_concept"] <= 1  # Mardia's r over the concept, no sign
        assert "skipped" in walk["direction_traversal"]
    assert all("factor_circular_monotonicity" not in t and "factor_spearman" in t["direction_traversal"] for t in linear)
    assert report["circular_factor_traversals"] == len(walks)
    assert report["factor_traversal_mean_abs_circular_monotonicity"] == pytest.approx(
        np.mean([abs(t["factor_circular_monotonicity"]) for t in walks])
    )
