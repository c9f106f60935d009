"""A model's hyper-parameters are declared once: its YAML, its docstring and check_config follow."""

from __future__ import annotations

import pytest
from recbole.utils import argument_list

from recbole_disentangle import registry
from recbole_disentangle.config import model_yaml_files
from recbole_disentangle.errors import ConfigError
from recbole_disentangle.model.hyperparameters import (
    Hyperparameter,
    check_hyperparameters,
    integer,
    yaml_comments,
    yaml_mismatches,
)

# RecBole's own settings (epochs, learning_rate, train_neg_sample_args, ...), which a model's YAML
# may set too without declaring them.
RECBOLE_SETTINGS = {key for name in dir(argument_list) if isinstance(getattr(argument_list, name), list)
                    for key in getattr(argument_list, name)}

DECLARING = [name for name in registry.PLUGIN_MODELS if registry.get_model(name).__dict__.get("hyperparameters")]


def test_every_model_of_the_package_declares_its_hyperparameters():
    assert DECLARING == list(registry.PLUGIN_MODELS)


@pytest.mark.parametrize("name", DECLARING)
def test_the_yaml_gives_every_declared_key_a_default_and_its_meaning(name):
    model = registry.get_model(name)
    assert yaml_mismatches(model.hyperparameters, model_yaml_files(name), RECBOLE_SETTINGS) == []


@pytest.mark.parametrize("name", DECLARING)
def test_the_docstring_lists_every_declared_key(name):
    model = registry.get_model(name)
    for parameter in model.hyperparameters:
        assert f"``{parameter.name}`` ({parameter.kind}): " in model.__doc__


def test_a_comment_that_drifts_and_an_undeclared_key_are_found(tmp_path):
    declared = (Hyperparameter("width", "int", "Width of the layer.", integer(1), "it must be an integer >= 1"),
                Hyperparameter("depth", "int", "Number of layers."))
    yaml_file = tmp_path / "Toy.yaml"
    yaml_file.write_text("width: 3        # (int) Width of a layer, in units.\n"
                         "height: 2       # (int) Not declared.\n"
                         "epochs: 10\n", encoding="utf-8")
    problems = yaml_mismatches(declared, [yaml_file], RECBOLE_SETTINGS)
    assert problems == [
        "'width' in Toy.yaml: its comment should begin with '(int) Width of the layer.', it reads "
        "'(int) Width of a layer, in units.'.",
        "'depth' is declared but no YAML file gives it a default.",
        "'height' in Toy.yaml is not declared in the model's hyperparameters.",
    ]


def test_yaml_comments_join_continuation_lines(tmp_path):
    yaml_file = tmp_path / "a.yaml"
    yaml_file.write_text("# heading\nkey: 1   # (int) First part,\n          #       second part.\nother: [a, b]\n"
                         "nested:\n  inner: 2  # (int) not top level\n", encoding="utf-8")
    assert yaml_comments(yaml_file) == {"key": "(int) First part, second part.", "other": "", "nested": ""}


def test_the_first_value_that_breaks_its_rule_is_named_in_declaration_order():
    declared = (Hyperparameter("a", "int", "A.", integer(1), "it must be an integer >= 1"),
                Hyperparameter("b", "int", "B.", integer(0), "it must be an integer >= 0"))
    config = {"model": "Toy", "a": 0, "b": -1}
    with pytest.raises(ConfigError, match=r"^Toy: 'a' = 0 is invalid: it must be an integer >= 1\.$"):
        check_hyperparameters(config, declared)
    config["a"] = 1
    with pytest.raises(ConfigError, match=r"^Toy: 'b' = -1 is invalid: it must be an integer >= 0\.$"):
        check_hyperparameters(config, declared)
    config["b"] = 0
    check_hyperparameters(config, declared)
