"""Evaluation protocols: how a data set is split, how a trained model is scored, and with what.

A protocol is an object registered here by name; ``eval_protocol: <name>`` selects it, and the
Config, the data preparation, the Trainer, the console and the benchmark ask :func:`protocol_of`
(or :func:`get_protocol`) instead of comparing names. Two are registered:

* ``recbole`` (the default): RecBole's split (``eval_args``) and RecBole's Evaluator
  (``metrics`` x ``topk``);
* ``paper``: the MultVAE / MacridVAE strong-generalisation protocol (held-out users, fold-in and
  targets; :mod:`recbole_disentangle.data.protocol` splits the users), scored with the per-user
  metrics of :mod:`recbole_disentangle.evaluation.metrics`.

A new protocol subclasses :class:`Protocol`, implements the methods that differ, and is passed
to :func:`register_protocol`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from recbole.data.interaction import Interaction

from recbole_disentangle.data.dataset import (
    check_topk,
    paper_dataloaders,
    recbole_dataloaders,
)
from recbole_disentangle.data.protocol import HeldOutUsers, configure_paper_settings, paper_split
from recbole_disentangle.errors import ConfigError
from recbole_disentangle.evaluation.metrics import metrics_from_hits, summarise, top_items
from recbole_disentangle.model.base import evaluation_pass


@dataclass
class Evaluation:
    """What a protocol's own evaluation returns: the summary RecBole's ``evaluate`` would, and the
    per-user values (``{"user": [...], metric: [...]}``) when the protocol keeps them."""

    result: dict
    per_user: dict | None = None


class Protocol:
    """The parts of an evaluation protocol; each method documents what the pipeline expects."""

    name: str = ""
    title: str = ""  # a heading for tables and figures (benchmarks/benchmark.py)
    # The metrics a benchmark table reports, in its column order (each a key of the test result).
    metrics: tuple[str, ...] = ()
    keeps_per_user = False  # whether test results can be paired user by user (report.py)
    # Whether validation and test users are held out of training: models that need a user id
    # then also train on their fold-in rows (results say so).
    holds_out_users = False

    def configure(self, config) -> None:
        """Check the protocol's settings and translate them into RecBole's (before data is read)."""

    def split(self, config, dataset):
        """(train_data, valid_data, test_data, model_dataset) from a loaded, filtered data set."""
        raise NotImplementedError

    def check(self, config, dataset) -> None:
        """Checks on the loaded data that only make sense for a run that evaluates (after ``split``)."""

    def evaluate(self, model, eval_data, device) -> Evaluation | None:
        """Score ``model`` on ``eval_data`` (what ``split`` returned for validation or test);
        None: RecBole's Evaluator scores it (``eval_data`` is one of RecBole's loaders)."""
        return None

    def describe(self, config) -> str:
        """The protocol in words: how users and interactions are split, what is ranked."""
        return f"{self.name} protocol"

    def split_line(self, train_data, valid_data, test_data) -> str:
        """How the data were split, in words (the console's data line, after the counts)."""
        return ""


class RecBoleProtocol(Protocol):
    name = "recbole"
    title = "RecBole protocol (per-user random split 80/10/10, full ranking)"
    # RecBole's Evaluator reports every metric x topk of the config; the tables show these.
    metrics = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")

    def split(self, config, dataset):
        return recbole_dataloaders(config, dataset)

    def check(self, config, dataset) -> None:
        check_topk(config, dataset)

    def describe(self, config) -> str:
        args = config["eval_args"] or {}
        split = args.get("split") or {}
        how = ", ".join(f"{kind} {'/'.join(f'{part:g}' for part in parts) if isinstance(parts, list) else parts}"
                        for kind, parts in split.items())
        order = {"RO": "random order", "TO": "time order"}.get(args.get("order"), args.get("order"))
        group = " per user" if args.get("group_by") == "user" else ""
        mode = args.get("mode") or {}
        ranking = mode.get("test", mode) if isinstance(mode, dict) else mode
        return f"RecBole protocol (split {how}{group}, {order}; {ranking} ranking)"

    def split_line(self, train_data, valid_data, test_data) -> str:
        parts = []
        for name, loader in (("training", train_data), ("validation", valid_data), ("test", test_data)):
            part = getattr(loader, "_dataset", None)
            if part is not None:
                parts.append(f"{part.inter_num:,} {name}")
        return f"split into {' / '.join(parts)} interactions" if parts else ""


class PaperProtocol(Protocol):
    name = "paper"
    title = "Paper protocol (held-out users, fold-in 80% / rank 20%)"
    metrics = ("ndcg@100", "recall@20", "recall@50")
    keeps_per_user = True
    holds_out_users = True

    def configure(self, config) -> None:
        configure_paper_settings(config, self.metrics)

    def split(self, config, dataset):
        return paper_dataloaders(config, paper_split(dataset, config))

    def evaluate(self, model, eval_data, device) -> Evaluation:
        per_user = per_user_metrics(model, eval_data, device, self.metrics)
        # Kept for the result file: benchmarks pair two models' scores user by user.
        return Evaluation(summarise(per_user), {"user": eval_data.users.tolist(),
                                                **{k: v.tolist() for k, v in per_user.items()}})

    def describe(self, config) -> str:
        target = config["paper_target_fraction"]
        return (f"paper protocol (held-out users: {config['paper_heldout_users']} for validation and again for "
                f"test; fold-in {1 - target:.0%} / rank {target:.0%} of each one's items)")

    def split_line(self, train_data, valid_data, test_data) -> str:
        train = getattr(train_data, "_dataset", None)
        trained = (f"{len(set(train.inter_feat[train.uid_field].tolist())):,} training users, "
                   if train is not None else "")
        return (f"after the protocol's filters; {trained}{len(valid_data.users):,} validation and "
                f"{len(test_data.users):,} test users")


PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(protocol: Protocol) -> Protocol:
    """Make ``protocol`` selectable as ``eval_protocol: <protocol.name>``."""
    PROTOCOLS[protocol.name] = protocol
    return protocol


def get_protocol(name) -> Protocol:
    try:
        return PROTOCOLS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"eval_protocol = {name!r}: choose one of {', '.join(PROTOCOLS)}.") from None


def protocol_of(config) -> Protocol:
    """The protocol ``config`` selects (``eval_protocol``, RecBole's when unset)."""
    return get_protocol(config["eval_protocol"] or "recbole")


register_protocol(RecBoleProtocol())
register_protocol(PaperProtocol())


def data_preparation(config, dataset):
    """(train_data, valid_data, test_data, model_dataset) as the config's protocol splits ``dataset``."""
    return protocol_of(config).split(config, dataset)


# ---- scoring held-out users ---------------------------------------------------------------
def _full_scores(model, users: torch.Tensor, n_items: int) -> torch.Tensor:
    interaction = Interaction({model.USER_ID: users})
    try:
        return model.full_sort_predict(interaction).view(len(users), n_items)
    except NotImplementedError:  # RecBole models that only score pairs
        items = torch.arange(n_items, device=users.device)
        pairs = Interaction({model.USER_ID: users.repeat_interleave(n_items), model.ITEM_ID: items.repeat(len(users))})
        return model.predict(pairs).view(len(users), n_items)


def held_out_scores(model, users: torch.Tensor, fold_in: sp.csr_matrix) -> torch.Tensor:
    """Every item's score for held-out users, (B, n_items), given their fold-in rows.

    A model that reads a user's interactions (``fold_in_predict``, see
    :class:`~recbole_disentangle.model.base.DisentangleModel`) is given the fold-in rows. Others
    (RecBole's models, models with user embeddings) score by user id: they were built on a data
    set that holds the fold-in rows (``PaperSplit.model_dataset``).
    """
    fold_in_predict = getattr(model, "fold_in_predict", None)
    if callable(fold_in_predict):
        return fold_in_predict(fold_in).view(len(users), fold_in.shape[1])
    return _full_scores(model, users, fold_in.shape[1])


@torch.no_grad()
def per_user_metrics(model, held_out: HeldOutUsers, device, metrics=PaperProtocol.metrics) -> dict[str, torch.Tensor]:
    """Each metric for each held-out user, in the order of ``held_out.users``.

    Kept per user so that two models evaluated on the same users (same data set, same seed) can
    be compared pairwise: the paired difference has a far smaller standard error than the
    difference of two means when the users' difficulty varies as much as it does here.

    One pass (the model's item side computed once, ``evaluation_pass``), in the batches of users
    ``held_out`` gives (eval_batch_size // n_items); a batch's only dense (users, items) matrix is
    its scores: fold-in and targets stay sparse.
    """
    model.eval()
    excluded = torch.as_tensor(np.concatenate([[0], held_out.excluded_items]), dtype=torch.long, device=device)
    collected: dict[str, list[torch.Tensor]] = {name: [] for name in metrics}
    with evaluation_pass(model):
        for rows in held_out.batches():
            users = torch.as_tensor(held_out.users[rows], dtype=torch.long, device=device)
            fold_in = held_out.fold_in[rows]
            scores = held_out_scores(model, users, fold_in).float()
            fold_in_users, fold_in_items = _nonzero(fold_in, device)
            scores[fold_in_users, fold_in_items] = float("-inf")
            scores[:, excluded] = float("-inf")
            top = top_items(scores, metrics)
            hits, n_targets = _target_hits(top, held_out.targets[rows], device)
            for name, values in metrics_from_hits(hits, n_targets, metrics).items():
                collected[name].append(values.cpu())
    return {name: torch.cat(values) for name, values in collected.items()}


def _nonzero(rows: sp.csr_matrix, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column) of every distinct stored entry with a value > 0, as tensors on ``device``."""
    rows = rows.tocsr(copy=True)
    rows.sum_duplicates()
    rows.data = (rows.data > 0).astype(np.int8)
    rows.eliminate_zeros()
    row = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
    return (torch.as_tensor(row, dtype=torch.long, device=device),
            torch.as_tensor(rows.indices, dtype=torch.long, device=device))


def _target_hits(top: torch.Tensor, targets: sp.csr_matrix, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(hits (B, k) 1.0 where ``top``'s item is a target, each user's number of targets (B,)), as
    ``ranking_metrics`` derives them from a dense target matrix, here from sparse rows: a
    (user, item) pair is matched by its key user * n_items + item."""
    target_users, target_items = _nonzero(targets, device)
    n_items = targets.shape[1]
    rank_keys = torch.arange(len(top), device=device).unsqueeze(1) * n_items + top
    hits = torch.isin(rank_keys, target_users * n_items + target_items).float()
    n_targets = torch.bincount(target_users, minlength=len(top)).float()
    return hits, n_targets
