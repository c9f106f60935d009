"""The feature command: ``python -m recbole_disentangle.data.features image|text ...``."""

from __future__ import annotations

import argparse

from recbole_disentangle.config import dataset_folder, dataset_settings
from recbole_disentangle.errors import RecBoleDisError

from .extract import dataset_item_ids, extract_image_features, extract_text_features, item_texts
from .storage import feature_folder


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m recbole_disentangle.data.features",
        description="Extract item features (AlexNet fc7 from images, sentence embeddings from .item text fields) "
        "into <out>/<dataset>.<name>.npy + .ids. Re-running skips the items already stored.",
    )
    sub = parser.add_subparsers(dest="kind", required=True)
    for kind in ("image", "text"):
        p = sub.add_parser(kind)
        p.add_argument("--dataset", required=True, help="data set name (its atomic files give the item ids)")
        p.add_argument("--data-path", default=None, help="folder holding <dataset>/ (default: the plugin's data_path)")
        p.add_argument("--out", default=None, help="output folder (default: feature_dir, else the data set's folder)")
        p.add_argument("--name", default="alexnet" if kind == "image" else "text", help="feature set name")
        p.add_argument("--item-field", default="item_id")
        p.add_argument("--batch-size", type=int, default=32 if kind == "image" else 64)
        p.add_argument("--device", default="cpu")
        p.add_argument("--no-progress", action="store_true")
        if kind == "image":
            p.add_argument("--images", required=True, help="folder of <item_id>.<jpg|png|...> files, or a file item_id<TAB>path_or_url")
            p.add_argument("--weights", default="imagenet", help="imagenet (torchvision), PATH to a state_dict, or random (tests only)")
            p.add_argument("--seed", type=int, default=0, help="seed of --weights random")
        else:
            p.add_argument("--fields", nargs="+", required=True, help=".item text fields, joined with '. ' (e.g. movie_title)")
            p.add_argument("--model", default="all-MiniLM-L6-v2", help="sentence-transformers model name or local folder")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # Where a run of any model would read the data set and its features (no model needed).
        settings = dataset_settings(args.dataset, {"data_path": args.data_path} if args.data_path else None)
        folder = dataset_folder(args.dataset, settings.get("data_path"))
        out = args.out or feature_folder({"feature_dir": settings.get("feature_dir"), "data_path": folder})
        progress = not args.no_progress
        if args.kind == "image":
            ids = dataset_item_ids(folder, args.dataset, args.item_field)
            report = extract_image_features(
                ids, args.images, out, args.dataset, args.name, args.weights, args.batch_size, args.device, args.seed,
                show_progress=progress,
            )
        else:
            texts = item_texts(folder, args.dataset, args.fields, args.item_field)
            report = extract_text_features(
                texts, out, args.dataset, args.name, args.model, args.batch_size, args.device, show_progress=progress
            )
    except (RecBoleDisError, ImportError) as err:
        print(f"error: {err}")
        return 2
    print(report.summary())
    return 0
