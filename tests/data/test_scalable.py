"""The array-code data preparation (issue 14) against RecBole's own, on small data: same rows,
same order, same matrices, same negatives, same evaluation users and items, for both protocols."""

import numpy as np
import pandas as pd
import pytest
import torch
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.data.dataset import Dataset
from recbole.data.utils import create_samplers as recbole_create_samplers
from recbole.utils import init_seed

from model_contract import FAST
from recbole_disentangle.config import Config
from recbole_disentangle.data.dataloader import ArrayFullSortEvalDataLoader
from recbole_disentangle.data.dataset import create_dataset, dataset_class
from recbole_disentangle.data.protocol import paper_split
from recbole_disentangle.data.sampler import ArraySampler, create_samplers
from recbole_disentangle.data.scalable import ScalableDataset, leave_one_out_rows, ratio_split_rows


def recbole_ratio_split(keys, ratios):
    parts = [[] for _ in ratios]
    for group in Dataset._grouped_index(None, keys):
        bounds = Dataset._calcu_split_ids(None, tot=len(group), ratios=ratios)
        for part, start, end in zip(parts, [0] + bounds, bounds + [len(group)]):
            part.extend(group[start:end])
    return parts


def random_keys(seed, n_groups=60, largest=25):
    rng = np.random.RandomState(seed)
    keys = np.repeat(rng.permutation(n_groups * 3)[:n_groups], rng.randint(1, largest, size=n_groups))
    return keys[rng.permutation(len(keys))]


@pytest.mark.parametrize("ratios", [[0.8, 0.1, 0.1], [0.8, 0.2], [1 / 3, 1 / 3, 1 / 3], [0.6, 0.2, 0.1, 0.1], [1.0]])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ratio_split_matches_recboles_grouped_loop(ratios, seed):
    keys = random_keys(seed)
    ours = ratio_split_rows(keys, len(keys), ratios)
    assert [part.tolist() for part in ours] == recbole_ratio_split(keys, ratios)
    ungrouped = ratio_split_rows(None, len(keys), ratios)
    bounds = Dataset._calcu_split_ids(None, tot=len(keys), ratios=ratios)
    assert [part.tolist() for part in ungrouped] == [list(range(s, e)) for s, e in zip([0] + bounds, bounds + [len(keys)])]


@pytest.mark.parametrize("leave_one_num", [1, 2, 3])
def test_leave_one_out_matches_recboles_loop(leave_one_num):
    keys = random_keys(3, largest=5)  # many groups of 1-3 rows: fewer rows than parts
    expected = Dataset._split_index_by_leave_one_out(None, Dataset._grouped_index(None, keys), leave_one_num)
    assert [part.tolist() for part in leave_one_out_rows(keys, leave_one_num)] == expected


def ml100k_config(**settings):
    return Config("MacridVAE", "ml-100k", config_dict={**FAST, **settings})


def both_datasets(config):
    """RecBole's Dataset and ours, each loaded from the atomic file."""
    return Dataset(config), ScalableDataset(config)


def same_interactions(a, b):
    assert list(a.interaction) == list(b.interaction)
    for field in a.interaction:
        assert torch.equal(a[field], b[field]), field


def test_plain_models_load_the_scalable_dataset():
    assert dataset_class(ml100k_config()) is ScalableDataset
    assert isinstance(create_dataset(ml100k_config()), ScalableDataset)


def test_the_inter_file_is_read_as_recboles_python_parser_reads_it(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "odd.inter").write_text(
        "user_id:token\titem_id:token\trating:float\tnote:token\n"
        'u1\ti1\t4.1\t"quoted, text"\nu1\ti2\t0.30000000000000004\t\nu2\ti1\t1e-3\t 7 \n\nu2\ti3\t\tx\n'
    )
    config = Config("BPR", "odd", config_dict={**FAST, "data_path": str(tmp_path), "load_col": None})
    theirs, ours = both_datasets(config)
    pd.testing.assert_frame_equal(ours.inter_feat, theirs.inter_feat)
    config = ml100k_config(load_col=None)
    theirs, ours = both_datasets(config)
    pd.testing.assert_frame_equal(ours.inter_feat, theirs.inter_feat)


@pytest.mark.parametrize("split", [{"RS": [0.8, 0.1, 0.1]}, {"LS": "valid_and_test"}, {"LS": "test_only"}])
def test_build_splits_the_same_rows_in_the_same_order(split):
    config = ml100k_config(eval_args={"split": split, "order": "RO", "group_by": "user", "mode": "full"})
    theirs, ours = both_datasets(config)
    init_seed(config["seed"], True)
    expected = theirs.build()
    init_seed(config["seed"], True)
    built = ours.build()
    for a, b in zip(expected, built):
        same_interactions(a.inter_feat, b.inter_feat)


@pytest.mark.parametrize("max_history_len", [None, 7])
def test_history_item_matrix_is_recboles(max_history_len):
    config = ml100k_config()
    theirs, ours = both_datasets(config)
    for dataset in (theirs, ours):
        dataset._change_feat_format()  # as after build(), where models ask for the matrix
    torch.manual_seed(5)
    expected = theirs.history_item_matrix(value_field="rating", max_history_len=max_history_len)
    after_theirs = torch.rand(3)
    torch.manual_seed(5)
    got = ours.history_item_matrix(value_field="rating", max_history_len=max_history_len)
    assert torch.equal(torch.rand(3), after_theirs)  # the same random numbers were drawn
    for a, b in zip(expected, got):
        assert a.dtype == b.dtype and torch.equal(a, b)
    torch.manual_seed(5)
    expected_items = theirs.history_user_matrix()
    torch.manual_seed(5)
    for a, b in zip(expected_items, ours.history_user_matrix()):
        assert torch.equal(a, b)


def recbole_parts(config):
    theirs, ours = both_datasets(config)
    init_seed(config["seed"], True)
    expected = theirs.build()
    init_seed(config["seed"], True)
    return theirs, expected, ours, ours.build()


def test_sampler_uses_the_same_items_and_draws_the_same_negatives():
    config = Config("BPR", "ml-100k", config_dict=FAST)
    theirs, expected, ours, built = recbole_parts(config)
    old = recbole_create_samplers(config, theirs, expected)
    new = create_samplers(config, ours, built)
    assert isinstance(new[0], ArraySampler)
    for a, b in zip(old, new):
        assert all(a.used_ids[u] == b.used_ids[u] for u in range(theirs.user_num))
    users = built[0].inter_feat["user_id"][:500].numpy()
    for sample in (lambda s: s.sample_by_user_ids(users, None, 3), lambda s: s.sample_by_user_ids(users[:1].repeat(40), None, 2)):
        np.random.seed(11)
        negatives = sample(old[0])
        np.random.seed(11)
        assert torch.equal(sample(new[0]), negatives)


def collated(loader):
    """Every batch as (users, per-user positive items, per-user history items), order within a user aside."""
    out = []
    for user_df, (history_u, history_i), positive_u, positive_i in loader:
        users = user_df["user_id"].tolist()
        positives = [sorted(positive_i[positive_u == k].tolist()) for k in range(len(users))]
        history = [sorted(history_i[history_u == k].tolist()) for k in range(len(users))]
        out.append((users, positives, history))
    return out


def test_full_sort_evaluation_loader_gives_the_same_users_and_items():
    config = ml100k_config(eval_batch_size=50 * 1683)
    theirs, expected, ours, built = recbole_parts(config)
    old = recbole_create_samplers(config, theirs, expected)
    new = create_samplers(config, ours, built)
    for phase in (1, 2):
        old_loader = FullSortEvalDataLoader(config, expected[phase], old[phase])
        new_loader = ArrayFullSortEvalDataLoader(config, built[phase], new[phase])
        assert torch.equal(old_loader.uid_list, new_loader.uid_list)
        assert np.array_equal(old_loader.uid2items_num, new_loader.uid2items_num)
        same_interactions(expected[phase].inter_feat, built[phase].inter_feat)  # sorted by user, as RecBole leaves it
        assert len(old_loader) == len(new_loader) > 1
        assert collated(old_loader) == collated(new_loader)
        user = int(new_loader.uid_list[3])
        assert set(old_loader.uid2history_item[user].tolist()) == set(new_loader.uid2history_item[user].tolist())


def test_evaluation_through_the_pipeline_scores_what_recboles_loaders_score(workdir):
    from recbole_disentangle.quick_start import build
    from recbole_disentangle.trainer import get_trainer

    config = ml100k_config(epochs=1)
    _, _, valid_data, _, model = build(config)
    assert isinstance(valid_data, ArrayFullSortEvalDataLoader)
    theirs, expected, _, _ = recbole_parts(config)
    old_valid = FullSortEvalDataLoader(config, expected[1], recbole_create_samplers(config, theirs, expected)[1])
    trainer = get_trainer(config, model)
    assert trainer.evaluate(valid_data, load_best_model=False) == trainer.evaluate(old_valid, load_best_model=False)


def test_paper_protocol_split_is_the_same_on_either_dataset():
    config = Config("BPR", "ml-100k", config_dict={**FAST, "eval_protocol": "paper", "paper_heldout_users": 50})
    theirs, ours = both_datasets(config)
    expected, split = paper_split(theirs, config), paper_split(ours, config)
    for phase in ("valid", "test"):
        a, b = getattr(expected, phase), getattr(split, phase)
        assert np.array_equal(a.users, b.users)
        assert (a.fold_in != b.fold_in).nnz == 0 and (a.targets != b.targets).nnz == 0
    same_interactions(expected.model_dataset.inter_feat, split.model_dataset.inter_feat)
    built = [split.model_dataset] * 3
    old = recbole_create_samplers(config, expected.model_dataset, [expected.model_dataset] * 3)
    new = create_samplers(config, split.model_dataset, built)
    assert all(old[0].used_ids[u] == new[0].used_ids[u] for u in range(ours.user_num))
