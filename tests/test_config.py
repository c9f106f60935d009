"""Configuration: layering, model resolution, command-line parsing and errors."""

from pathlib import Path

import pytest

from recbole_disentangle import config as config_module
from recbole_disentangle import settings as settings_module
from recbole_disentangle.config import Config, parse_cmd_args
from recbole_disentangle.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_each_layer_overrides_the_one_below(tmp_path, monkeypatch):
    props = tmp_path / "properties"
    write(props / "overall.yaml", "a: overall\nb: overall\nc: overall\nd: overall\ne: overall\neval_batch_size: 7\n")
    # BPR: a RecBole model, so its RecBole YAML is the layer below ours.
    write(props / "model" / "BPR.yaml", "b: model\nc: model\nd: model\ne: model\nembedding_size: 8\n")
    write(props / "dataset" / "ml-100k.yaml", "c: dataset\nd: dataset\ne: dataset\n")
    first = write(tmp_path / "first.yaml", "d: file1\ne: file1\n")
    second = write(tmp_path / "second.yaml", "e: file2\n")
    monkeypatch.setattr(config_module, "properties_dir", lambda: props)
    monkeypatch.setattr(settings_module, "properties_dir", lambda: props)  # the keys it knows
    # known_keys() caches what properties_dir() holds: not these fake properties (the cache would
    # outlive the patch and make every shipped key unknown to the tests after this one).
    monkeypatch.setattr(settings_module, "known_keys", settings_module.known_keys.__wrapped__)

    config = Config("BPR", "ml-100k", config_file_list=[str(first), str(second)], cmd_args=["--e=cmd"])
    assert [config[k] for k in "abcde"] == ["overall", "model", "dataset", "file1", "cmd"]
    assert config["eval_batch_size"] == 7  # plugin overall.yaml over RecBole's 4096
    assert config["embedding_size"] == 8  # plugin model YAML over RecBole's BPR.yaml (64)
    assert config["epochs"] == 300  # untouched RecBole default
    config = Config("BPR", "ml-100k", config_file_list=[str(first), str(second)])
    assert config["e"] == "file2"  # later files win


def test_shipped_properties_are_read():
    config = Config("MacridVAE", "ml-100k")
    assert config["eval_batch_size"] == 1_000_000  # properties/overall.yaml
    assert (config["kfac"], config["std"], config["train_batch_size"]) == (7, 0.075, 100)  # model YAML
    assert "rating" in config["load_col"]["inter"]  # dataset YAML


def test_plugin_model_does_not_inherit_recboles_yaml_of_the_same_name():
    from recbole_disentangle.model.macridvae import MacridVAE

    config = Config("MacridVAE", "ml-100k")
    assert config.model_class is MacridVAE
    assert config["total_anneal_steps"] is None  # from RecBole's MacridVAE.yaml, must not leak


def test_recboles_own_macridvae_stays_reachable_with_its_own_defaults():
    from recbole.model.general_recommender.macridvae import MacridVAE as RecBoleMacridVAE

    config = Config("RecBoleMacridVAE", "ml-100k")
    assert config.model_class is RecBoleMacridVAE
    assert config["model"] == "RecBoleMacridVAE"
    assert config["total_anneal_steps"] == 200000 and config["kfac"] == 10


def test_recbole_baselines_resolve_unchanged():
    from recbole.model.general_recommender.multivae import MultiVAE

    assert Config("MultiVAE", "ml-100k").model_class is MultiVAE


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ConfigError) as err:
        Config("MacridVAEE", "ml-100k")
    message = str(err.value)
    assert "MacridVAEE" in message and "RecBoleMacridVAE" in message and "MultiVAE" in message and "LightGCN" in message
    for missing in ("RecBoleVBPR", "RecBoleAD-DRL", "RecBoleSEM-MacridVAE"):  # RecBole has no such model
        assert missing not in message


def test_recboles_model_type_defaults_win_over_the_plugins_layers():
    fm = Config("FM", "ml-100k")  # context-aware: labeled evaluation, RecBole's CTR metrics and feature columns
    assert fm["metrics"] == ["AUC", "LogLoss"] and fm["valid_metric"] == "AUC"
    assert fm["eval_args"]["mode"]["valid"] == "labeled" and "user" in fm["load_col"]
    cke = Config("CKE", "ml-100k")  # knowledge-aware: properties/dataset/ml-100k.yaml's load_col lacks kg, link
    assert {"kg", "link"} <= set(cke["load_col"])
    gru = Config("GRU4Rec", "ml-100k")  # sequential with a cross-entropy loss: no negative sampling
    assert gru["eval_args"]["split"] == {"LS": "valid_and_test"} and gru["train_neg_sample_args"]["distribution"] == "none"
    # the user's own settings still win
    assert Config("FM", "ml-100k", config_dict={"metrics": ["AUC"]})["metrics"] == ["AUC"]
    assert Config("MacridVAE", "ml-100k")["metrics"] == ["Recall", "NDCG", "MRR", "Hit", "Precision"]


def test_command_line_values_are_yaml():
    parsed = parse_cmd_args(["--encoder_hidden_size=[600]", "--learning_rate=1e-3", "--show_progress=false",
                             "--eval_args={split: {RS: [0.8, 0.1, 0.1]}}", "--name=a=b"])
    assert parsed == {"encoder_hidden_size": [600], "learning_rate": 0.001, "show_progress": False,
                      "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}}, "name": "a=b"}
    assert isinstance(parsed["learning_rate"], float)


@pytest.mark.parametrize("arg", ["epochs=3", "--epochs", "-e=3"])
def test_unreadable_command_line_arguments_are_errors(arg):
    with pytest.raises(ConfigError, match="--key=value"):
        parse_cmd_args([arg])


def test_malformed_yaml_names_file_and_line(tmp_path):
    bad = write(tmp_path / "bad.yaml", "epochs: 3\nlearning_rate: 0.1\nkfac: [1, 2\n")
    with pytest.raises(ConfigError) as err:
        Config("MacridVAE", "ml-100k", config_file_list=[str(bad)])
    assert "bad.yaml" in str(err.value) and "line 4" in str(err.value)


def test_yaml_files_cannot_build_python_objects(tmp_path, workdir):
    evil = write(tmp_path / "evil.yaml", "epochs: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="evil.yaml"):
        Config("MacridVAE", "ml-100k", config_file_list=[str(evil)])
    assert not Path("pwned").exists()


def test_ml100k_falls_back_to_recboles_shipped_copy_unless_data_path_has_one(tmp_path):
    config = Config("MacridVAE", "ml-100k", config_dict={"data_path": str(tmp_path)})
    assert Path(config["data_path"], "ml-100k.inter").is_file()
    assert "dataset_example" in config["data_path"]
    write(tmp_path / "ml-100k" / "ml-100k.inter", "user_id:token\titem_id:token\n1\t2\n")
    config = Config("MacridVAE", "ml-100k", config_dict={"data_path": str(tmp_path)})
    assert Path(config["data_path"]) == tmp_path / "ml-100k"


def test_other_data_sets_live_under_data_path(tmp_path):
    config = Config("MacridVAE", "ml-1m", config_dict={"data_path": str(tmp_path)})
    assert Path(config["data_path"]) == tmp_path / "ml-1m"


def test_runs_elsewhere_get_the_data_path_a_run_here_would_take(tmp_path):
    """One rule for the sweeps' trials and the benchmark's runs, which execute in other folders."""
    from recbole_disentangle.config import data_path_for_runs_elsewhere

    default = (tmp_path / "dataset_atomic").resolve()
    # ml-100k not in the default folder: no data path, so RecBole's bundled copy is used
    assert data_path_for_runs_elsewhere("MacridVAE", "ml-100k", base=tmp_path) is None
    # another data set missing from the default folder: the default where the user stands (the
    # benchmark used to pass none, so its runs looked inside their work folder)
    assert data_path_for_runs_elsewhere("MacridVAE", "ml-1m", base=tmp_path) == str(default)
    write(tmp_path / "dataset_atomic" / "ml-100k" / "ml-100k.inter", "user_id:token\titem_id:token\n1\t2\n")
    assert data_path_for_runs_elsewhere("MacridVAE", "ml-100k", base=tmp_path) == str(default)
    # a config file's data_path, and the command line's over it, relative to where the user stands
    mine = write(tmp_path / "my.yaml", "data_path: mine/\n")
    assert data_path_for_runs_elsewhere("MacridVAE", "ml-100k", [str(mine)], base=tmp_path) == str(tmp_path / "mine")
    assert data_path_for_runs_elsewhere("BPR", "ml-1m", [str(mine)], "typed", base=tmp_path) == str(tmp_path / "typed")
    assert data_path_for_runs_elsewhere("BPR", "ml-1m", data_path="/abs/d", base=tmp_path) == "/abs/d"
