"""RecBole's Config, layered with this package's properties and its model registry.

Precedence, lowest first:
RecBole's defaults (its overall.yaml, and its model YAML for RecBole models)
< ``properties/overall.yaml`` < ``properties/model/<Model>.yaml`` < ``properties/dataset/<dataset>.yaml``
< ``config_file_list`` (in order) < ``config_dict`` < command-line ``--key=value``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml
from recbole.config import Config as RecBoleConfig
from recbole.utils import ModelType

from recbole_disentangle import registry
from recbole_disentangle.device_settings import apply_gpu_step_defaults
from recbole_disentangle.errors import ConfigError
from recbole_disentangle.evaluation.protocols import protocol_of
from recbole_disentangle.paths import properties_dir  # noqa: F401  (also imported from here)
from recbole_disentangle.settings import check_general_settings, check_unknown_keys


def _yaml_loader() -> type:
    """A *safe* loader that also reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``), as RecBole's does.

    RecBole uses FullLoader; the safe loader can construct no Python object from a file.
    """

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
            |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
            |\.[0-9_]+(?:[eE][-+][0-9]+)?
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
            re.X,
        ),
        list("-+0123456789."),
    )
    return Loader


YAML_LOADER = _yaml_loader()


def load_yaml_file(path: str | os.PathLike) -> dict:
    """A YAML mapping from ``path``; a ConfigError naming the file and line when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file '{path}' does not exist.")
    try:
        content = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"Malformed YAML in {where}: {problem}.") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"Config file '{path}' must hold a mapping of key: value, not {type(content).__name__}.")
    return content


def parse_value(text: str):
    """A command-line value read as YAML, so ``[600]``, ``0.5``, ``1e-3``, ``true``, ``{RS: [0.8,0.1,0.1]}`` work."""
    try:
        return yaml.load(text, Loader=YAML_LOADER)
    except yaml.YAMLError:
        return text  # not YAML: keep the literal string (a path with ':' in it, say)


def parse_cmd_args(args: list[str]) -> dict:
    """``--key=value`` arguments -> {key: value}; anything else is a ConfigError."""
    parsed: dict = {}
    for arg in args:
        if not arg.startswith("--") or "=" not in arg:
            raise ConfigError(
                f"Cannot read the argument '{arg}': settings are given as --key=value "
                f"(for example --learning_rate=0.001 or --encoder_hidden_size=[600])."
            )
        key, text = arg[2:].split("=", 1)
        value = parse_value(text)
        if key in parsed and parsed[key] != value:
            raise ConfigError(f"The setting '{key}' is given twice on the command line with different values.")
        parsed[key] = value
    return parsed


def recbole_bundled_folder(dataset: str) -> str:
    """Where RecBole's wheel keeps its bundled copy of ``dataset`` (only ml-100k has one)."""
    import recbole.config.configurator as configurator

    return os.path.normpath(os.path.join(os.path.dirname(os.path.realpath(configurator.__file__)),
                                         "../dataset_example/" + dataset))


def dataset_folder(dataset: str, data_root) -> str:
    """The folder a data set's atomic files are read from: ``<data_root>/<dataset>``.

    For ml-100k, RecBole's bundled copy unless ``data_root`` holds one of its own (RecBole always
    points ml-100k at its copy; a user who converted their own ml-100k into data_path gets theirs).
    """
    own_copy = Path(data_root or "", dataset)
    if dataset == "ml-100k" and not (own_copy / "ml-100k.inter").is_file():
        return recbole_bundled_folder(dataset)
    return os.path.normpath(own_copy)


def dataset_settings(dataset: str, overrides: dict | None = None) -> dict:
    """A data set's settings where no model is involved (the feature command, say):
    ``properties/overall.yaml`` < ``properties/dataset/<dataset>.yaml`` < ``overrides``.

    The layers a run's Config puts over RecBole's defaults, less the model's YAML; data_path is
    the root, as given (:func:`dataset_folder` finds the data set's folder in it).
    """
    root = properties_dir()
    settings: dict = {}
    for file in (root / "overall.yaml", root / "dataset" / f"{dataset}.yaml"):
        if file.is_file():
            settings.update(load_yaml_file(file))
    settings.update(overrides or {})
    return settings


class Config(RecBoleConfig):
    """RecBole's Config with the plugin's properties, model registry and safe parsing.

    Args:
        model: a model name (``MacridVAE``, ``RecBoleMacridVAE``, ``MultiVAE``, ...) or class.
        dataset: the data set name.
        config_file_list: YAML files, later ones override earlier ones.
        config_dict: settings as a dict, over the files.
        cmd_args: ``--key=value`` strings, over everything; ``None`` reads nothing (unlike
            RecBole, which always reads ``sys.argv``: a library call must not see its caller's argv).
        strict: a setting no component reads (``kfacc``) is an error instead of a warning.
    """

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None,
                 strict=False):
        self._cmd_args = list(cmd_args or [])
        self._file_of_key: dict = {}
        # The data set's YAML under properties/ and what it changed over the model's defaults:
        # key -> (value, file); for changed_settings() and source_of().
        self._dataset_yaml_changes: dict = {}
        self._defaults: dict | None = None  # the settings before the data set's YAML and the user's
        try:
            super().__init__(model, dataset, config_file_list, config_dict)
        except ConfigError:
            raise
        except (ValueError, TypeError, KeyError, NotImplementedError) as err:
            # RecBole's own checks (topk, metrics, eval_args, ...) say what is wrong in their words.
            raise ConfigError(f"RecBole rejects the settings: {err} Fix that setting (RecBole's documentation "
                              f"lists each setting's values).") from None
        # Defaults that depend on the device (users per step on a GPU): before the checks, which see them.
        self.device_changes = apply_gpu_step_defaults(self)
        # A misspelt key first: it may be why a setting below has its default and fails.
        check_unknown_keys(self, strict)
        check_general_settings(self)
        protocol_of(self).configure(self)
        check = getattr(self.model_class, "check_config", None)
        if check is not None:
            check(self)

    def set_by_user(self, key: str) -> bool:
        """Whether ``key``'s value was chosen for this run: a config file, ``config_dict``, the
        command line, or the data set's YAML where it differs from the model's default (the layers
        :meth:`source_of` names), not a default."""
        return key in self.external_config_dict or key in self._dataset_yaml_changes

    def source_of(self, key: str) -> str:
        """Where the value of ``key`` came from, for error messages: the command line, a file, ..."""
        if key in self.cmd_config_dict:
            return f"--{key} on the command line"
        if key in self.variable_config_dict:
            return "config_dict"
        if key in self.file_config_dict:
            return f"config file {self._file_of_key.get(key, '?')}"
        if key in self._dataset_yaml_changes:
            return f"data set file {self._dataset_yaml_changes[key][1]}"
        return "the default, from properties/ or RecBole's YAML files"

    def changed_settings(self) -> list[tuple[str, object, str]]:
        """(key, value, where it came from) for each setting that differs from the defaults.

        The defaults are RecBole's, ``properties/overall.yaml`` and the model's YAML; a change comes
        from the data set's YAML under ``properties/dataset/``, a config file, ``config_dict`` or the
        command line (the last of these that sets the key). A value equal to the default is no change.
        """
        changed = {key: (value, f"data set file {file}") for key, (value, file) in self._dataset_yaml_changes.items()}
        for key, value in self.external_config_dict.items():
            if key in ("model", "dataset", "config_files"):
                continue
            if key in self._defaults and self._defaults[key] == value:
                changed.pop(key, None)  # the user set it back to the default
                continue
            changed[key] = (value, self.source_of(key))
        changed.update({key: (value, why) for key, (value, why) in getattr(self, "device_changes", {}).items()})
        return [(key, value, source) for key, (value, source) in changed.items()]

    # ---- external settings -------------------------------------------------------------
    def _build_yaml_loader(self):
        return YAML_LOADER

    def _load_config_files(self, file_list):
        merged: dict = {}
        for file in file_list or []:
            layer = load_yaml_file(file)
            merged.update(layer)
            self._file_of_key.update(dict.fromkeys(layer, str(file)))
        return merged

    def _load_variable_config_dict(self, config_dict):
        # RecBole eval()s string values here; Python callers pass typed values, so take them as given.
        return dict(config_dict or {})

    def _load_cmd_line(self):
        return parse_cmd_args(self._cmd_args)

    @property
    def overrides(self) -> dict:
        """What the user set (files, dict, command line): enough to rebuild this Config."""
        return dict(self.external_config_dict)

    # ---- model and internal settings ----------------------------------------------------
    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise ConfigError("No model given: pass --model=NAME (see --help for the list).")
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise ConfigError("No data set given: pass --dataset=NAME (for example --dataset=ml-100k).")
        if isinstance(model, str):
            return model, registry.get_model(model), dataset
        return model.__name__, model, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        # RecBole's layer: its overall.yaml and, for RecBole's models, its model YAML. A plugin
        # model must not inherit the YAML of RecBole's model of the same name (RecBole's
        # MacridVAE.yaml sets std=0.01, total_anneal_steps=200000, ...), so RecBole is asked for
        # a name it has no file for.
        recbole_name = f"{model}.plugin" if registry.is_plugin_model(model) else registry.recbole_base_name(model)
        self._model_type_layer: dict = {}
        super()._load_internal_config_dict(recbole_name, model_class, dataset)

        root = properties_dir()
        for file in (root / "overall.yaml", *model_yaml_files(model), root / "dataset" / f"{dataset}.yaml"):
            if file.is_file():
                layer = load_yaml_file(file)
                if file.parent.name == "dataset":
                    self._defaults = dict(self.internal_config_dict)
                    shown = file.relative_to(root.parent) if file.is_relative_to(root.parent) else file
                    self._dataset_yaml_changes = {k: (v, str(shown)) for k, v in layer.items()
                                                  if k not in self._defaults or self._defaults[k] != v}
                    self.parameters["Dataset"] += [k for k in layer if k not in self.parameters["Dataset"]]
                self.internal_config_dict.update(layer)
        if self._defaults is None:
            self._defaults = dict(self.internal_config_dict)
        # RecBole's model-type YAML (context-aware: labeled evaluation with AUC and LogLoss and the
        # user/item feature columns; knowledge-aware: the .kg and .link columns; sequential: the
        # leave-one-out split) is what makes those models run at all: the plugin's ranking
        # metrics or ml-100k's load_col must not override it. Only the user's settings may.
        self.internal_config_dict.update(self._model_type_layer)

    def _update_internal_config_dict(self, file):
        layer = super()._update_internal_config_dict(file)
        if Path(file).parent.name == "quick_start_config":  # RecBole's per-model-type defaults
            self._model_type_layer.update(layer or {})
        return layer

    def _set_default_parameters(self):
        if (self.final_config_dict.get("MODEL_TYPE") == ModelType.SEQUENTIAL
                and self.final_config_dict.get("loss_type") == "CE"
                and "train_neg_sample_args" not in self.external_config_dict):
            # RecBole's overall.yaml samples one negative per interaction, which its own check then
            # refuses for a cross-entropy sequential model (GRU4Rec, SASRec): RecBole's quick start
            # fails for them unless the user adds train_neg_sample_args: ~. CE needs no negatives.
            self.final_config_dict["train_neg_sample_args"] = None
        data_root = self.external_config_dict.get("data_path", self.internal_config_dict.get("data_path"))
        super()._set_default_parameters()
        self.final_config_dict["data_path"] = dataset_folder(self.dataset, data_root)
        # The shipped copy of ml-100k stands in only when the user named no data path of their
        # own: one that lacks the files is an error when the data set is loaded (see
        # data.dataset.ensure_dataset_files), not a silent switch to other data.
        own_copy = Path(data_root or "", self.dataset)
        self.named_data_path = None
        if self.dataset == "ml-100k" and not (own_copy / "ml-100k.inter").is_file() and self._names_own_data_path():
            self.named_data_path = str(own_copy)

    def _names_own_data_path(self) -> bool:
        """The user set ``data_path``, to a folder other than the default (sweeps pass the default resolved)."""
        given = self.external_config_dict.get("data_path")
        if given is None:
            return False
        default = self.internal_config_dict.get("data_path")
        return default is None or Path(str(given)).resolve() != Path(str(default)).resolve()

    def _init_device(self):
        # RecBole sets CUDA_VISIBLE_DEVICES from gpu_id and picks cuda when available; honour use_gpu too.
        super()._init_device()
        if not self.final_config_dict.get("use_gpu", True):
            import torch

            self.final_config_dict["device"] = torch.device("cpu")


def to_plain(value):
    """``value`` with every non-plain leaf (torch.device, Enum, ...) turned into its string, for
    checkpoints that load with ``weights_only=True`` and for JSON/YAML output."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_plain(v) for v in value]
    return str(value)


def plain_config(config: Config) -> dict:
    """The final settings of ``config`` as plain Python values."""
    return to_plain(config.final_config_dict)


def model_yaml_files(model: str) -> list[Path]:
    """``properties/model/<Model>.yaml`` of ``model`` (or the file given to
    :func:`~recbole_disentangle.registry.register_model`), after those of the plugin models its class
    derives from (:func:`recbole_disentangle.registry.plugin_lineage`): later files win."""
    names = registry.plugin_lineage(model) or [model]
    return [registry.registered_yaml_file(name) or properties_dir() / "model" / f"{name}.yaml" for name in names]


def model_defaults(model: str) -> dict:
    """The hyper-parameters and defaults this package's YAML files give ``model``, layered as
    Config layers them (parents first); empty for a model of RecBole's."""
    defaults: dict = {}
    for file in model_yaml_files(model):
        if file.is_file():
            defaults.update(load_yaml_file(file))
    return defaults


def data_path_for_runs_elsewhere(model, dataset: str, config_files=None, data_path=None, base=None,
                                 config=None) -> str | None:
    """The ``data_path`` to give a run that executes in another folder (a sweep's trial, a
    benchmark's run), as an absolute path; None means: give it none.

    The value is the one a run started in ``base`` (default: the current folder) would take:
    ``data_path`` from the command line, else the last of ``config_files`` that sets it, else the
    properties' default (``dataset_atomic/``), made absolute against ``base`` because RecBole
    reads a relative data_path from the folder a run executes in. None only when the default
    folder lacks ml-100k: ml-100k then comes from RecBole's wheel, and naming the default folder
    would make it a data path of the user's, which a run refuses when it lacks the data set. Any
    other data set gets the resolved default even when missing there, so that a run's error (or
    RecBole's download) names the folder the user meant, not one inside the work folder.
    ``config``: a Config already built from the same files and ``data_path`` (a sweep's), read
    instead of building one.
    """
    if config is None:
        config = Config(model, dataset, config_files, {"data_path": data_path} if data_path is not None else None)
    given = "data_path" in config.external_config_dict
    value = config.external_config_dict["data_path"] if given else config.internal_config_dict["data_path"]
    path = Path(str(value)).expanduser()
    path = path if path.is_absolute() else (Path(base or Path.cwd()) / path).resolve()
    if not given and dataset == "ml-100k" and not (path / dataset / f"{dataset}.inter").is_file():
        return None
    return str(path)
