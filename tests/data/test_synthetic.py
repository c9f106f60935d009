"""The planted-structure generator: seeded, documented structure, valid atomic files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recbole_disentangle.data.synthetic import generate, main, write_atomic

SMALL = dict(n_concepts=3, items_per_concept=30, n_users=200, interactions_per_user=12, min_interactions=5, seed=3)


def test_same_seed_same_data_other_seed_other_data():
    first, second, other = generate(**SMALL), generate(**SMALL), generate(**{**SMALL, "seed": 4})
    assert np.array_equal(first.items, second.items) and np.array_equal(first.users, second.users)
    assert not (len(first.items) == len(other.items) and np.array_equal(first.items, other.items))


def test_users_mix_two_or_three_concepts_and_stay_mostly_inside_them():
    data = generate(**{**SMALL, "noise": 0.0})
    assert all(2 <= len(c) <= 3 for c in data.user_concepts)
    inside = np.array([data.item_concept[i] in data.user_concepts[u] for u, i in zip(data.users, data.items)])
    assert inside.all()  # noise 0: every adoption comes from one of the user's concepts
    pairs = set(zip(data.users.tolist(), data.items.tolist()))
    assert len(pairs) == len(data.users)  # distinct items per user


def test_adoptions_concentrate_near_the_users_preferred_factors():
    data = generate(**{**SMALL, "noise": 0.0, "factor_width": 0.1})
    # same user, same concept: adopted items lie closer together in factor space than random ones
    frame = pd.DataFrame({"u": data.users, "k": data.item_concept[data.items], "i": data.items})
    spreads = [data.item_factors[g.i].std(axis=0).mean() for _, g in frame.groupby(["u", "k"]) if len(g) >= 3]
    assert np.mean(spreads) < 0.5 * data.item_factors.std(axis=0).mean()


def test_atomic_files_hold_the_true_concept_and_load_in_recbole(tmp_path):
    data = generate(**SMALL)
    folder = write_atomic(data, tmp_path, "tiny")
    item = pd.read_csv(folder / "tiny.item", sep="\t")
    assert list(item.columns) == ["item_id:token", "concept:token", "factor_0:float", "factor_1:float", "title:token_seq"]
    truth = dict(zip(data.item_tokens, data.item_concept))
    assert all(truth[t] == k for t, k in zip(item["item_id:token"], item["concept:token"]))
    inter = pd.read_csv(folder / "tiny.inter", sep="\t")
    assert len(inter) == len(data.items)

    from recbole_disentangle.config import Config
    from recbole_disentangle.data.dataset import create_dataset

    config = Config("MacridVAE", "tiny", config_dict={"data_path": str(tmp_path), "load_col": None, "state": "WARNING"})
    dataset = create_dataset(config)
    assert dataset.item_num == 3 * 30 + 1 and "concept" in dataset.item_feat.columns


def test_cli_writes_and_refuses_to_overwrite(tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--name", "p", "--n_users", "50", "--items_per_concept", "10", "--n_concepts", "3"]
    assert main(argv) == 0
    assert (tmp_path / "p" / "p.inter").is_file() and "50 users" in capsys.readouterr().out
    assert main(argv) == 2
    assert "--force" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0


def test_impossible_settings_are_refused():
    with pytest.raises(ValueError, match="max_concepts"):
        generate(n_concepts=2, max_concepts=3)


def test_each_factor_can_have_its_own_kernel_width_and_a_wrong_count_is_refused():
    # Factor 0 narrow, factor 1 wide: a user's adoptions in one concept spread less along factor 0.
    data = generate(**{**SMALL, "noise": 0.0, "factor_width": (0.05, 0.5)})
    frame = pd.DataFrame({"u": data.users, "k": data.item_concept[data.items], "i": data.items})
    spreads = np.array([data.item_factors[g.i].std(axis=0) for _, g in frame.groupby(["u", "k"]) if len(g) >= 3])
    assert spreads[:, 0].mean() < 0.6 * spreads[:, 1].mean()
    with pytest.raises(ValueError, match="one per factor"):
        generate(**{**SMALL, "factor_width": (0.1, 0.2, 0.3)})
    with pytest.raises(ValueError, match="one per factor"):
        generate(**{**SMALL, "factor_width": 0.0})


def _fingerprint(data) -> str:
    import hashlib

    digest = hashlib.sha256()
    for array in (data.users, data.items, data.order, data.item_concept, data.item_factors, data.item_tokens, data.user_tokens):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def test_default_data_is_unchanged_by_the_concept_sizes_option():
    # Digest of generate(**SMALL) made with the generator before concept_sizes existed: data sets
    # generated earlier (and the results recorded on them) stay reproducible byte for byte.
    assert _fingerprint(generate(**SMALL)) == "be67f36ea75f314aaec8a309f8014701073f3cfa095f99d8348d6d094d98f11c"
    assert _fingerprint(generate(**SMALL, concept_sizes=(30, 30, 30))) == _fingerprint(generate(**SMALL))


def test_concepts_can_have_unequal_sizes():
    sizes = (60, 25, 5)
    data = generate(**{**SMALL, "noise": 0.0, "concept_sizes": sizes})
    assert np.bincount(data.item_concept).tolist() == list(sizes)
    assert len(data.item_tokens) == sum(sizes) and data.item_factors.shape == (sum(sizes), 2)
    # A user's weight on a concept does not depend on its size: the 5-item concept gets adopted
    # about as often per member user as the 60-item one (each is renormalised within itself).
    frame = pd.DataFrame({"u": data.users, "k": data.item_concept[data.items]})
    per_member = frame.groupby("k").size() / [sum(k in c for c in data.user_concepts) for k in range(3)]
    assert per_member[2] > 0.1 * per_member[0]
    assert (frame.groupby("u").size() >= SMALL["min_interactions"]).all()
    with pytest.raises(ValueError, match="one item count"):
        generate(**{**SMALL, "concept_sizes": (10, 10)})
    with pytest.raises(ValueError, match="one item count"):
        generate(**{**SMALL, "concept_sizes": (10, 0, 10)})


def test_cli_takes_concept_sizes(tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--name", "u", "--n_users", "50", "--n_concepts", "3", "--concept_sizes", "20", "7", "3"]
    assert main(argv) == 0
    item = pd.read_csv(tmp_path / "u" / "u.item", sep="\t")
    assert item["concept:token"].value_counts().sort_index().tolist() == [20, 7, 3]
    assert main(["--out", str(tmp_path), "--name", "v", "--n_concepts", "3", "--concept_sizes", "20", "7"]) == 2
    assert "--n_concepts 2" in capsys.readouterr().err
