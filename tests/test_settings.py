"""RecBole's general settings are checked; settings no component reads are named, with the closest known key."""

import logging
import re
from pathlib import Path

import pytest
import recbole

from recbole_disentangle.config import Config
from recbole_disentangle.data.dataset import ensure_dataset_files
from recbole_disentangle.errors import ConfigError, DatasetFilesMissing
from recbole_disentangle.settings import known_keys

PACKAGE = Path(__file__).resolve().parent.parent / "recbole_disentangle"


def test_every_key_the_code_reads_is_known():
    """A key RecBole's or this package's code reads must never be reported as unknown (CODE_ONLY_KEYS)."""
    read = set()
    for root in (Path(recbole.__file__).parent, PACKAGE):
        for file in root.rglob("*.py"):
            text = file.read_text(encoding="utf-8")
            read |= set(re.findall(r"config\[\s*[\"'](\w+)[\"']\s*\]", text))
            read |= set(re.findall(r"config\.get\(\s*[\"'](\w+)[\"']", text))
    assert read - known_keys() == set()


def test_a_misspelt_key_warns_with_the_closest_known_one(caplog):
    with caplog.at_level(logging.WARNING, logger="recbole_disentangle"):
        Config("MacridVAE", "ml-100k", config_dict={"kfacc": 3})
    assert "'kfacc' (config_dict)" in caplog.text and "Did you mean kfac?" in caplog.text


def test_strict_makes_a_misspelt_key_an_error(tmp_path):
    typo = tmp_path / "typo.yaml"
    typo.write_text("embeding_size: 32\n")
    with pytest.raises(ConfigError, match=r"'embeding_size' \(config file .*typo.yaml\).*Did you mean embedding_size\?"):
        Config("MacridVAE", "ml-100k", config_file_list=[str(typo)], strict=True)


def test_known_keys_do_not_warn(caplog):
    with caplog.at_level(logging.WARNING, logger="recbole_disentangle"):
        Config("MacridVAE", "ml-100k", config_dict={"kfac": 3, "epochs": 2, "USER_ID_FIELD": "user_id",
                                                    "feature_dir": "x", "MAX_ITEM_LIST_LENGTH": 20})
        Config("BPR", "ml-100k", cmd_args=["--reg_weight=0.1"])  # a RecBole model's own key
    assert "read by no component" not in caplog.text


@pytest.mark.parametrize("arg, rule", [
    ("--learning_rate=abc", r"'learning_rate' = 'abc' \(--learning_rate on the command line\).*number > 0"),
    ("--learning_rate=-1", "number > 0"),
    ("--train_batch_size=0", "integer >= 1"),
    ("--eval_batch_size=0", "integer >= 1"),
    ("--stopping_step=-1", "integer >= 0"),
    ("--epochs=-3", "integer >= 1"),
    ("--epochs=2.5", "integer >= 1"),
    ("--epochs=true", "integer >= 1"),
    ("--topk=[10, 0]", "positive integer"),
    ("--metrics=[NoSuchMetric]", "RecBole rejects the settings: There is no metric named"),
    ("--learner=adamm", "adamw"),
    ("--load_col=None", "mapping of file suffix"),
])
def test_general_settings_are_checked_before_any_data_is_read(arg, rule):
    with pytest.raises(ConfigError, match=rule):
        Config("MacridVAE", "ml-100k", cmd_args=[arg])


def test_valid_general_settings_pass():
    config = Config("BPR", "ml-100k", cmd_args=["--learning_rate=1e-3", "--epochs=1", "--topk=10", "--learner=AdamW",
                                                 "--stopping_step=0", "--load_col=~"])
    assert config["topk"] == [10]


def test_a_named_data_path_without_the_data_set_does_not_fall_back_to_the_bundled_copy(tmp_path):
    config = Config("MacridVAE", "ml-100k", config_dict={"data_path": str(tmp_path / "nowhere")})
    with pytest.raises(DatasetFilesMissing, match=r"nowhere/ml-100k/ml-100k.inter does not exist.*nowhere itself"):
        ensure_dataset_files(config)
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "ml-100k.inter").write_text("user_id:token\titem_id:token\n1\t2\n")
    config = Config("MacridVAE", "ml-100k", config_dict={"data_path": str(tmp_path / "flat")})
    with pytest.raises(DatasetFilesMissing, match=r"flat/ml-100k.inter exists.*move them into .*flat/ml-100k/"):
        ensure_dataset_files(config)


def test_without_a_data_path_ml100k_is_the_bundled_copy(workdir):
    config = Config("MacridVAE", "ml-100k")
    ensure_dataset_files(config)
    assert "dataset_example" in config["data_path"]
    # the default given explicitly (as sweeps pass it, resolved) is not "a path of the user's own"
    config = Config("MacridVAE", "ml-100k", config_dict={"data_path": str(Path("dataset_atomic").resolve())})
    ensure_dataset_files(config)


def test_files_directly_in_data_path_are_named_for_other_data_sets_too(tmp_path):
    (tmp_path / "mine.inter").write_text("user_id:token\titem_id:token\n1\t2\n")
    config = Config("BPR", "mine", config_dict={"data_path": str(tmp_path), "load_col": None})
    with pytest.raises(DatasetFilesMissing, match=r"mine.inter exists.*move them into"):
        ensure_dataset_files(config)
