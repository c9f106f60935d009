"""Loading a data set for RecBole, with errors a person can act on.

Nothing here unpickles: RecBole's ``create_dataset`` / ``data_preparation`` reload saved
datasets and dataloaders with ``pickle.load`` when such files exist; this module always builds
them from the atomic files.
"""

from __future__ import annotations

import contextlib
import importlib
import socket
from logging import getLogger
from pathlib import Path

import numpy as np
import yaml

from recbole_disentangle.data.atomic_check import count_rows, find_bad_value
from recbole_disentangle.data.convert import CONVERTERS, convert_command
from recbole_disentangle.data.dataloader import ArrayFullSortEvalDataLoader, UserBatchDataLoader
from recbole_disentangle.data.fields import read_header
from recbole_disentangle.data.sampler import create_samplers
from recbole_disentangle.data.scalable import ScalableDataset
from recbole_disentangle.errors import DatasetError, DatasetFilesMissing

SHIPPED_DATASETS = ("ml-100k",)  # inside RecBole's wheel, always available offline


def recbole_model_name(config) -> str:
    """The name RecBole's name-keyed tables (AE dataloaders, ``<Model>Dataset``) know the model by:
    its class's name, as RecBole's Config names a model given as a class (``RecBoleMacridVAE`` is
    RecBole's class ``MacridVAE``)."""
    return config.model_class.__name__


@contextlib.contextmanager
def as_recbole_model(config):
    """Let RecBole's name-keyed tables see ``RecBoleX`` as ``X`` (:func:`recbole_model_name`)."""
    name = config["model"]
    config["model"] = recbole_model_name(config)
    try:
        yield
    finally:
        config["model"] = name


def recbole_download_urls() -> dict[str, str]:
    """Data set name -> archive URL, for the data sets RecBole's downloader knows (its url.yaml)."""
    import recbole

    url_file = Path(recbole.__file__).parent / "properties" / "dataset" / "url.yaml"
    return yaml.safe_load(url_file.read_text(encoding="utf-8")) or {}


def converter_names() -> list[str]:
    return list(CONVERTERS)


def local_datasets(data_root: Path) -> list[str]:
    if not data_root.is_dir():
        return []
    return sorted(p.name for p in data_root.iterdir() if (p / f"{p.name}.inter").is_file())


def known_datasets(data_root: str | Path = "dataset_atomic") -> list[str]:
    """Names ``--dataset`` accepts: local atomic folders, the shipped one, the convertible ones."""
    names = dict.fromkeys([*local_datasets(Path(data_root)), *SHIPPED_DATASETS, *converter_names()])
    return list(names)


def check_fields(config) -> None:
    """Every field the configuration names must exist in the atomic file it names."""
    name, data_path = config["dataset"], Path(config["data_path"])
    inter_file = data_path / f"{name}.inter"
    inter_fields = read_header(inter_file)
    for key in ("USER_ID_FIELD", "ITEM_ID_FIELD"):
        if config[key] not in inter_fields:
            raise DatasetError(
                f"{key} is '{config[key]}', but {inter_file} has no such column "
                f"(its columns: {', '.join(inter_fields)}). Set {key} to one of them."
            )
    wanted = dict(config["load_col"] or {})
    for field in (config["val_interval"] or {}):
        wanted.setdefault("inter", [])
        if field not in wanted["inter"]:
            wanted["inter"] = [*wanted["inter"], field]
    for suffix, fields in wanted.items():
        file = data_path / f"{name}.{suffix}"
        if not file.is_file():
            raise DatasetError(f"load_col names the file suffix '{suffix}', but {file} does not exist.")
        columns = read_header(file)
        missing = [f for f in fields or [] if f not in columns]
        if missing:
            raise DatasetError(
                f"The configuration names field(s) {', '.join(missing)} of {file}, which has only "
                f"{', '.join(columns)}. Fix load_col / val_interval (or the properties/dataset YAML)."
            )


def _missing_message(config, reason: str) -> str:
    name, data_path = config["dataset"], Path(config["data_path"])
    text = f"Data set '{name}': {data_path / (name + '.inter')} is missing ({reason})."
    if name in CONVERTERS:
        converter = CONVERTERS[name]
        text += (
            f" Get the raw dump ({converter.source}; files {', '.join(converter.raw_files)}) and convert it with: "
            f"{convert_command(name, 'RAW_DIR', str(data_path.parent))}"
        )
    return text


def _misplaced_hint(dataset_folder: Path) -> str:
    """A sentence when the atomic files sit in data_path itself instead of data_path/<name>/ ('' otherwise)."""
    name, root = dataset_folder.name, dataset_folder.parent
    if (root / f"{name}.inter").is_file():
        return (f" {root / (name + '.inter')} exists: the files must sit in a folder named after the data set, "
                f"<data_path>/{name}/{name}.inter; move them into {dataset_folder}/.")
    return ""


def _absent_folder(folder: Path) -> str:
    return "" if folder.is_dir() else f" (The folder {folder} itself does not exist.)"


def ensure_dataset_files(config) -> None:
    """Make sure the atomic files exist: RecBole's downloader when allowed and online, else a clear error."""
    name, data_path = config["dataset"], Path(config["data_path"])
    named = getattr(config, "named_data_path", None)
    if named is not None:  # ml-100k: the user's data_path lacks it; the shipped copy must not stand in
        raise DatasetFilesMissing(
            f"Data set '{name}': data_path names {Path(named).parent}, but {Path(named) / (name + '.inter')} "
            f"does not exist.{_misplaced_hint(Path(named)) or _absent_folder(Path(named).parent)} RecBole's bundled copy of ml-100k is used only "
            f"when no data_path is given: drop --data_path to use it."
        )
    if (data_path / f"{name}.inter").is_file():
        return
    misplaced = _misplaced_hint(data_path)
    if misplaced:
        raise DatasetFilesMissing(f"Data set '{name}': {data_path / (name + '.inter')} does not exist.{misplaced}")
    url = recbole_download_urls().get(name)
    downloadable = url is not None
    if name not in converter_names() and not downloadable:
        raise DatasetError(
            f"Unknown data set '{name}': no atomic files at {data_path}. Known data sets: "
            f"{', '.join(known_datasets(data_path.parent))}. A new data set needs {name}.inter "
            f"(and optionally .item/.user) in {data_path}."
        )
    if not downloadable:
        raise DatasetFilesMissing(_missing_message(config, "RecBole cannot download it"))
    if not config["download"]:
        raise DatasetFilesMissing(_missing_message(config, "download is switched off"))
    from recbole.utils.url import download_url, extract_zip, rename_atomic_files

    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)  # an offline machine must fail, not hang
    try:
        data_path.mkdir(parents=True, exist_ok=True)
        archive = download_url(url, str(data_path))
        extract_zip(archive, str(data_path))
        Path(archive).unlink()
        rename_atomic_files(str(data_path), Path(archive).stem, name)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; RecBole wraps interruptions in RuntimeError
        raise DatasetFilesMissing(_missing_message(config, f"RecBole's download failed: {err}")) from None
    finally:
        socket.setdefaulttimeout(previous_timeout)
    getLogger().info(f"Downloaded {name} into {data_path}")


def create_dataset(config):
    """RecBole's Dataset for ``config``, built from atomic files after checking them."""
    ensure_dataset_files(config)
    files = atomic_files(config)
    rows = {suffix: count_rows(file, config["field_separator"] or "\t", config["encoding"] or "utf-8")
            for suffix, file in files.items()}
    if rows["inter"] == 0:
        raise DatasetError(f"{files['inter']} has a header but no interactions: add rows, one interaction a line.")
    check_fields(config)
    try:
        dataset = dataset_class(config)(config)
    except ValueError as err:
        raise _explain_load_error(config, files, err) from None
    check_sizes(config, dataset)
    return dataset


def dataset_class(config) -> type:
    """The Dataset class a run of ``config`` loads: the one its model declares (``dataset_class``:
    the multimodal models' :class:`~recbole_disentangle.data.multimodal.MultimodalDataset`), else
    RecBole's choice (``recbole.data.utils.create_dataset``: ``<Model>Dataset``, else by model type),
    where that is RecBole's plain Dataset its array-code twin
    :class:`~recbole_disentangle.data.scalable.ScalableDataset` (same results, issue 14)."""
    from recbole.utils import ModelType

    declared = getattr(config.model_class, "dataset_class", None)
    if declared is not None:
        return declared
    dataset_module = importlib.import_module("recbole.data.dataset")
    special = getattr(dataset_module, recbole_model_name(config) + "Dataset", None)
    if special is None:
        type_to_class = {ModelType.SEQUENTIAL: "SequentialDataset", ModelType.KNOWLEDGE: "KnowledgeBasedDataset"}
        special = getattr(dataset_module, type_to_class.get(config["MODEL_TYPE"], "Dataset"))
    return ScalableDataset if special is dataset_module.Dataset else special


def eval_loader_class(config, phase: str) -> type:
    """RecBole's evaluation loader for ``phase``; its full-ranking one with the per-user loop replaced."""
    from recbole.data.dataloader import FullSortEvalDataLoader
    from recbole.data.utils import get_dataloader

    loader = get_dataloader(config, phase)
    return ArrayFullSortEvalDataLoader if loader is FullSortEvalDataLoader else loader


def reuse_dataset(dataset, config):
    """A loaded data set, ready for a run of ``config`` (sweeps and benchmarks load one and reuse it).

    A copy, since ``build()`` splits in place and the caller's must stay intact; one loaded for a
    model of RecBole's becomes the data set a plugin model declares (its item features are then
    read on first use).
    """
    reused = dataset.copy(dataset.inter_feat)
    declared = getattr(config.model_class, "dataset_class", None)
    if declared is not None and not isinstance(reused, declared):
        reused = declared.from_dataset(reused)
    reused.config = config
    return reused


def atomic_files(config) -> dict[str, Path]:
    """Suffix -> path of the atomic files RecBole will read for ``config`` (those that exist)."""
    from recbole.utils import ModelType

    name, data_path = config["dataset"], Path(config["data_path"])
    suffixes = ["inter", "user", "item"]
    if config["MODEL_TYPE"] == ModelType.KNOWLEDGE:
        suffixes += ["kg", "link"]
    suffixes += list(config["additional_feat_suffix"] or [])
    load_col = config["load_col"]
    files = {}
    for suffix in suffixes:
        file = data_path / f"{name}.{suffix}"
        # load_col lists the files RecBole reads; one it leaves out is never opened.
        if file.is_file() and (suffix == "inter" or not isinstance(load_col, dict) or suffix in load_col
                               or suffix in ("kg", "link")):
            files[suffix] = file
    return files


def _explain_load_error(config, files: dict[str, Path], err: ValueError) -> Exception:
    """RecBole's read failed: a DatasetError saying where and why, or ``err`` itself when unexplained."""
    load_col = config["load_col"] if isinstance(config["load_col"], dict) else {}
    for suffix, file in files.items():
        message = find_bad_value(file, config["field_separator"] or "\t", config["seq_separator"] or " ",
                                 config["encoding"] or "utf-8", load_col.get(suffix))
        if message:
            return DatasetError(message)
    if "Some feat is empty" in str(err):
        filters = {key: config[key] for key in ("val_interval", "user_inter_num_interval", "item_inter_num_interval",
                                                "rm_dup_inter", "filter_inter_by_user_or_item")
                   if config[key] not in (None, False)}
        return DatasetError(
            f"Data set '{config['dataset']}': no interaction is left after RecBole's filters "
            f"({', '.join(f'{k}={v}' for k, v in filters.items()) or 'none set'}; paper protocol: "
            f"paper_min_user_interactions, paper_rating_threshold). Loosen them."
        )
    return err


def check_split(config, dataset, built) -> None:
    """Every part the split asks for must hold interactions: an empty test part would end the run
    with ``test result: None`` and exit 0, an empty validation part would skip model selection."""
    split = (config["eval_args"] or {}).get("split") or {}
    wanted = ["train", "test"]
    if "RS" in split:
        ratios = list(split["RS"])
        wanted = [part for part, ratio in zip(("train", "valid", "test"), ratios + [0] * 3) if ratio > 0]
    elif split.get("LS") == "valid_and_test":
        wanted = ["train", "valid", "test"]
    sizes = dict(zip(("train", "valid", "test"), (len(part) for part in built)))
    empty = [part for part in wanted if sizes[part] == 0]
    if empty:
        inter = dataset.inter_feat[dataset.uid_field].numpy() if dataset.uid_field else None
        most = int(np.bincount(inter).max()) if inter is not None and len(inter) else 0
        raise DatasetError(
            f"Data set '{config['dataset']}': the {' and '.join(empty)} part(s) of the split are empty "
            f"(eval_args split = {split}; {dataset.user_num - 1} users, {dataset.inter_num} interactions, at most "
            f"{most} per user). A per-user split needs users with enough interactions (3 for train/valid/test): "
            f"keep such users with user_inter_num_interval: \"[3,inf)\", or change eval_args."
        )


def check_sizes(config, dataset) -> None:
    """A recommender needs at least two users and two items (one item leaves nothing to rank or to sample)."""
    users, items = dataset.user_num - 1, dataset.item_num - 1  # RecBole's id 0 is padding
    if users < 2 or items < 2:
        raise DatasetError(
            f"Data set '{config['dataset']}' has {users} user(s) and {items} item(s) after loading and filtering "
            f"({Path(config['data_path']) / (config['dataset'] + '.inter')}); a recommender needs at least 2 of each."
        )


def check_topk(config, dataset) -> None:
    """RecBole's ranking metrics take the top k of every item: k must not exceed their number.

    Checked when a run is built for evaluation (quick_start.build), not on every load: loading a
    small data set for inspection needs no topk. The RecBole protocol's check (the paper protocol
    ranks with its own metrics).
    """
    from recbole.utils import EvaluatorType

    items = dataset.item_num - 1
    topk = config["topk"] if isinstance(config["topk"], list) else [config["topk"]]
    if config["eval_type"] == EvaluatorType.RANKING and max(topk) > items:
        raise DatasetError(
            f"topk = {config['topk']} ({config.source_of('topk')}) asks for the top {max(topk)} of data set "
            f"'{config['dataset']}', which has {items} items: set topk to values of at most {items}, "
            f"e.g. --topk=[{min(items, 10)}]."
        )


def trains_on_user_batches(config) -> bool:
    """Auto-encoders (ours, and RecBole's MultiVAE, MultiDAE, MacridVAE, ...) read whole user rows."""
    from recbole.data.dataloader import UserDataLoader
    from recbole.data.utils import get_dataloader

    if getattr(config.model_class, "train_by_user", False):
        return True
    with as_recbole_model(config):
        return get_dataloader(config, "train") is UserDataLoader


def paper_dataloaders(config, split):
    """The paper protocol's loaders from its :class:`~recbole_disentangle.data.protocol.PaperSplit`.

    Training users only in the training loader (user batches for auto-encoders; models that need
    a user id also train on the held-out users' fold-in part, as the protocol allows), and
    :class:`~recbole_disentangle.data.protocol.HeldOutUsers` for validation and test.

    Returns:
        (train_data, valid_data, test_data, model_dataset)
    """
    from recbole.data.utils import get_dataloader

    if trains_on_user_batches(config):
        train_data = UserBatchDataLoader(config, split.train_dataset, None, shuffle=config["shuffle"])
    else:
        built = [split.model_dataset] * 3
        train_sampler, _, _ = create_samplers(config, split.model_dataset, built)
        with as_recbole_model(config):
            train_data = get_dataloader(config, "train")(
                config, split.model_dataset, train_sampler, shuffle=config["shuffle"]
            )
    return train_data, split.valid, split.test, split.model_dataset


def recbole_dataloaders(config, dataset):
    """RecBole's split and loaders, with user batches for ``train_by_user`` models.

    Returns:
        (train_data, valid_data, test_data, model_dataset)
    """
    from recbole.data.utils import get_dataloader
    from recbole.sampler import KGSampler
    from recbole.utils import ModelType

    built = dataset.build()
    train_dataset, valid_dataset, test_dataset = built
    check_split(config, dataset, built)
    train_sampler, valid_sampler, test_sampler = create_samplers(config, dataset, built)
    with as_recbole_model(config):
        if getattr(config.model_class, "train_by_user", False):
            train_data = UserBatchDataLoader(config, train_dataset, None, shuffle=config["shuffle"])
        elif config["MODEL_TYPE"] == ModelType.KNOWLEDGE:
            kg_sampler = KGSampler(
                dataset, config["train_neg_sample_args"]["distribution"], config["train_neg_sample_args"]["alpha"]
            )
            train_data = get_dataloader(config, "train")(config, train_dataset, train_sampler, kg_sampler, shuffle=True)
        else:
            train_data = get_dataloader(config, "train")(config, train_dataset, train_sampler, shuffle=config["shuffle"])
        valid_data = eval_loader_class(config, "valid")(config, valid_dataset, valid_sampler, shuffle=False)
        test_data = eval_loader_class(config, "test")(config, test_dataset, test_sampler, shuffle=False)
    return train_data, valid_data, test_data, train_dataset
