"""Feature arrays: storage round trip, alignment to RecBole's ids, and rejected files."""

import numpy as np
import pytest

from model_contract import FAST
from recbole_disentangle.config import Config
from recbole_disentangle.data.dataset import create_dataset
from recbole_disentangle.data.features import feature_paths, save_item_features
from recbole_disentangle.data.multimodal import load_item_features
from recbole_disentangle.errors import DatasetError


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory):
    """The shipped ml-100k, with its feature files looked up in a folder of the test's own."""
    dataset = create_dataset(Config("BPR", "ml-100k", config_dict=FAST))
    data_root = tmp_path_factory.mktemp("data")
    dataset.config["data_path"] = str(data_root)
    return dataset, data_root


def test_features_are_aligned_to_internal_ids(ml100k):
    dataset, root = ml100k
    tokens = ["50", "1", "999999", "172"]  # 999999 is no ml-100k item
    array = np.arange(16, dtype=np.float32).reshape(4, 4)
    save_item_features(root, "ml-100k", "toy", tokens, array)
    features = load_item_features(dataset, "toy", expected_dim=4)
    assert features.values.shape == (dataset.item_num, 4)
    for token, row in (("50", 0), ("1", 1), ("172", 3)):
        internal = dataset.token2id(dataset.iid_field, token)
        assert features.values[internal].tolist() == array[row].tolist()
        assert features.present[internal]
    assert int(features.present.sum()) == 3 and not features.present[0]


@pytest.mark.parametrize(
    "tokens, array, message",
    [
        (["a", "b"], np.ones((2, 3)), "None of the 2 item ids"),
        (["1", "2"], np.array([[1.0, np.nan, 0], [0, 0, 0]]), "NaN"),
        (["1", "1"], np.ones((2, 3)), "more than once"),
        (["1", "2"], np.ones((2, 5)), "5 dimensions; 3 expected"),
    ],
)
def test_bad_feature_files_are_rejected_with_a_reason(ml100k, tokens, array, message):
    dataset, root = ml100k
    save_item_features(root, "ml-100k", "bad", tokens, array)
    with pytest.raises(DatasetError, match=message):
        load_item_features(dataset, "bad", expected_dim=3)


def test_rows_and_ids_must_agree_and_files_must_exist(ml100k):
    dataset, root = ml100k
    array_path, ids_path = feature_paths(root, "ml-100k", "short")
    np.save(array_path, np.ones((3, 2), dtype=np.float32))
    ids_path.write_text("1\n2\n")
    with pytest.raises(DatasetError, match="3 rows but"):
        load_item_features(dataset, "short")
    with pytest.raises(DatasetError, match="missing"):
        load_item_features(dataset, "absent")


def test_feature_dir_setting_overrides_the_data_path(ml100k, tmp_path):
    """ml-100k's atomic files sit in RecBole's wheel: its features are looked up in feature_dir."""
    dataset, root = ml100k
    save_item_features(tmp_path, "ml-100k", "elsewhere", ["1", "2"], np.ones((2, 3)))
    with pytest.raises(DatasetError, match="missing"):
        load_item_features(dataset, "elsewhere")
    dataset.config["feature_dir"] = str(tmp_path)
    try:
        assert int(load_item_features(dataset, "elsewhere").present.sum()) == 2
    finally:
        dataset.config["feature_dir"] = None


def test_a_float_seq_column_of_the_item_file_is_accepted_when_no_array_exists(tmp_path, monkeypatch):
    from recbole_disentangle.evaluation.protocols import data_preparation

    folder = tmp_path / "data" / "toy"
    folder.mkdir(parents=True)
    (folder / "toy.item").write_text("item_id:token\tvec:float_seq\ni1\t1 2 3\ni2\t\ni3\t4 5 6\ni4\t7 8 9\n")
    (folder / "toy.inter").write_text("user_id:token\titem_id:token\n" + "".join(
        f"u{u}\ti{i}\n" for u in range(5) for i in range(1, 5) if (u + i) % 4))
    monkeypatch.chdir(tmp_path)
    config = Config("BPR", "toy", config_dict={**FAST, "data_path": str(tmp_path / "data"), "load_col": None})
    raw = create_dataset(config)
    prepared = data_preparation(config, raw)[0].dataset
    for dataset in (raw, prepared):
        features = load_item_features(dataset, "vec", expected_dim=3)
        token = {dataset.id2token("item_id", i): i for i in range(1, dataset.item_num)}
        assert features.values[token["i3"]].tolist() == [4, 5, 6]
        assert features.present[token["i1"]] and not features.present[token["i2"]] and not features.present[0]
    with pytest.raises(DatasetError, match="3 dimensions; 4 expected"):
        load_item_features(raw, "vec", expected_dim=4)
