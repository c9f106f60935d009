"""``python -m recbole_disentangle.analysis --model_file saved/X.pth --out DIR``: see the package docstring."""

from __future__ import annotations

import argparse
import sys
import warnings

from recbole_disentangle.analysis import AnalysisWarning, analyse
from recbole_disentangle.errors import RecBoleDisError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_disentangle.analysis",
        description="Concept maps (t-SNE PNGs), concept-category alignment, micro-disentanglement, "
        "dimension traversals and a controlled re-ranking for a trained MacridVAE-like model; "
        "numbers go to DIR/analysis.json.",
    )
    parser.add_argument("--model_file", required=True, help="checkpoint written by run_recbole_dis.py (saved/*.pth)")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--category_field", default=None,
                        help="item field holding ground-truth categories (default: the first of concept, class, "
                             "category, categories, genre that the item file has)")
    parser.add_argument("--multi_label", default="most_frequent", choices=("most_frequent", "first"),
                        help="one label for a token_seq category field: the item's label most frequent in the "
                             "catalog (default) or the first listed")
    parser.add_argument("--factor_fields", nargs="*", default=None,
                        help="float item fields with planted factors to traverse (default: every factor_* field)")
    parser.add_argument("--circular_factors", nargs="*", default=None, metavar="FIELD[:PERIOD]",
                        help="factor fields that are angles, judged by circular measures: FIELD (radians) or "
                             "FIELD:PERIOD (e.g. hue:360 for degrees); the data set's circular_fields are circular too")
    parser.add_argument("--max_users", type=int, default=300, help="users drawn on the maps (default 300)")
    parser.add_argument("--steps", type=int, default=5, help="B, items per traversal (default 5)")
    parser.add_argument("--gamma", type=float, default=1.0, help="gamma of the traversal objective (Eq. 12)")
    parser.add_argument("--beam_size", type=int, default=10, help="beam width of the traversal search")
    parser.add_argument("--tsne_iter", type=int, default=1000, help="t-SNE iterations (>= 250)")
    parser.add_argument("--traverse_item", default=None, help="also traverse from this item token")
    parser.add_argument("--traverse_user", default=None, help="also traverse from this user's component z_u^(k)")
    parser.add_argument("--traverse_concept", type=int, default=None,
                        help="k for --traverse_user (default: the user's most confident concept)")
    parser.add_argument("--traverse_dim", type=int, default=None,
                        help="dimension j for --traverse_item/--traverse_user (default: the largest |h*_j|)")
    parser.add_argument("--no_plots", action="store_true", help="numbers only, no PNG")
    parser.add_argument("--control_user", default=None, help="user token for the re-ranking demo (default: the first)")
    parser.add_argument("--control_concept", type=int, default=None,
                        help="concept k to re-weight / whose dimension moves (default: the user's most confident)")
    parser.add_argument("--control_weight", type=float, default=None,
                        help="new weight w_k of that concept (default 0: mute it; 1, kept as trained, with --control_dim)")
    parser.add_argument("--control_dim", type=int, default=None,
                        help="dimension j of z_u^(k) to shift (with --control_delta); the concept is not muted")
    parser.add_argument("--control_delta", type=float, default=None, help="shift of z_u^(k)_j")
    parser.add_argument("--topk", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (args.control_dim is None) != (args.control_delta is None):
        print("error: --control_dim and --control_delta go together.", file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            # the summary below says it louder, once, where the user looks
            warnings.simplefilter("ignore", AnalysisWarning)
            result = analyse(
                args.model_file, args.out, category_field=args.category_field, multi_label=args.multi_label,
                factor_fields=args.factor_fields, max_users=args.max_users, steps=args.steps, gamma=args.gamma,
                beam_size=args.beam_size, tsne_iter=args.tsne_iter, plots=not args.no_plots,
                traverse_item=args.traverse_item, traverse_user=args.traverse_user,
                traverse_concept=args.traverse_concept, traverse_dim=args.traverse_dim, control_user=args.control_user, control_concept=args.control_concept,
                control_weight=args.control_weight, control_dim=args.control_dim, control_delta=args.control_delta,
                circular_factors=args.circular_factors, topk=args.topk, seed=args.seed,
            )
    except (RecBoleDisError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}/analysis.json ({len(result.get('plots', []))} concept maps, "
          f"{len(result['traversals'])} traversals); {alignment_summary(result['alignment'])}; "
          f"independence {{items: {result['independence']['items']:.4f}, users: {result['independence']['users']:.4f}}}")
    if "not_computed" in result["alignment"]:
        print(f"WARNING: concept-category alignment is not computed: {result['alignment']['not_computed']}", file=sys.stderr)
    return 0


def alignment_summary(align: dict) -> str:
    """The alignment of the prototype concepts and of K-means on h, side by side (or why there is none)."""
    if "not_computed" in align:
        return "alignment NOT COMPUTED (see the warning)"

    def numbers(source):
        return "{" + ", ".join(f"{key}: {source[key]:.4f}" for key in ("nmi", "ari", "hungarian_accuracy")) + "}"

    return (f"alignment with '{align['category_field']}': prototypes {numbers(align)}, "
            f"k-means on {align['kmeans']['space']} {numbers(align['kmeans'])}")


if __name__ == "__main__":
    sys.exit(main())
