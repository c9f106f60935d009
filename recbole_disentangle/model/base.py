"""The hooks this package's pipeline calls on a model, beyond RecBole's own contract.

RecBole's contract (``recbole.model.abstract_recommender``) stays the model's: a class of one
file with ``calculate_loss(interaction)``, ``predict(interaction)`` and
``full_sort_predict(interaction)``, every hyper-parameter read from ``config[...]`` with its
default in ``properties/model/<Model>.yaml``. A model of this package also subclasses
:class:`ModelHooks` (after RecBole's base class) and overrides the hooks it needs; the defaults
here are what the pipeline assumes of a model that does not (RecBole's own models included, which
the callers reach with ``getattr``).

A model's YAML holds its own hyper-parameters; a model whose class derives from another plugin
model's (SEM-MacridVAE from MacridVAE) gets its parent's YAML first and its own over it
(:func:`recbole_disentangle.registry.plugin_lineage`), so its file holds only what differs.

The analysis (``recbole_disentangle.analysis``) needs more: the parts of :class:`ConceptModel`.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Protocol

import scipy.sparse as sp
import torch

from recbole_disentangle.model.hyperparameters import Hyperparameter, check_hyperparameters, docstring_section


class ModelHooks:
    """Hooks with their defaults; each is optional.

    ``train_by_user``: True = each training batch is a set of distinct user ids, every user once
    per epoch (``data.dataloader.UserBatchDataLoader``), as auto-encoders that read a user's whole
    row need; False = RecBole's loader for the model's input type.

    ``dataset_class``: the RecBole Dataset subclass the model is built on (the multimodal models:
    ``data.multimodal.MultimodalDataset``, item features and attributes aligned once); None =
    RecBole's own for the model.

    ``fold_in_predict(fold_in)``: scores of every item for users given by their interaction rows
    (a scipy (B, n_items) matrix), for a model that reads a user's interactions rather than a user
    embedding; the paper protocol passes held-out users' fold-in rows to it
    (``evaluation.protocols.held_out_scores``). None = the protocol scores by user id with
    ``full_sort_predict`` (the model was built on a data set that holds the fold-in rows).

    ``hyperparameters``: the model's own settings, a tuple of
    :class:`~recbole_disentangle.model.hyperparameters.Hyperparameter` (name, kind, meaning, rule),
    declared once: ``check_config`` checks them, the class docstring gets a section listing them,
    and a test holds the model's YAML to the same names and meanings.

    ``evaluation_cache()``: a context manager the trainer (``SafeCheckpointMixin.evaluate``, both
    protocols) and the paper protocol (``evaluation.protocols.per_user_metrics``) enter around one
    evaluation pass (they may nest); inside it a model may compute what every batch needs of the
    items (MacridVAE: ln c_i and 1 / |h_i|) once instead of per batch. The model must not
    serve anything stale: what it keeps is dropped when the outermost block ends and when the model
    trains again, and must not be reused once the parameters it came from change. Callers reach it
    through :func:`evaluation_pass`, which gives RecBole's models a block that does nothing. A model
    that scores in chunks reads ``eval_memory_budget_mb`` (``properties/overall.yaml``) for their size.
    """

    train_by_user: bool = False
    dataset_class: type | None = None
    fold_in_predict = None
    hyperparameters: tuple[Hyperparameter, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "hyperparameters" in cls.__dict__ and cls.hyperparameters:
            intro = inspect.cleandoc(cls.__doc__) if cls.__doc__ else cls.__name__
            cls.__doc__ = f"{intro}\n\n{docstring_section(cls.hyperparameters)}\n"

    @classmethod
    def check_config(cls, config) -> None:
        """Reject unusable hyper-parameters before any data is read: raise
        :class:`~recbole_disentangle.errors.ConfigError` naming the key, its value and the rule.
        Called by :class:`~recbole_disentangle.config.Config` once the settings are final. The
        default checks each of ``hyperparameters`` against its rule; a model with rules that
        relate two keys overrides it, calling ``super().check_config(config)`` first."""
        check_hyperparameters(config, cls.hyperparameters)

    def row_sparse_parameters(self) -> list:
        """The (N x d) tables whose gradients the model makes sparse (``F.embedding(...,
        sparse=True)``); the trainer updates them with a row-wise Adam that touches only the rows
        of each step's gradient (``optim.RowSparseAdam``) and the rest with RecBole's optimizer.
        Empty (the default): RecBole's optimizer for every parameter."""
        return []

    def host_batch_fields(self) -> tuple[str, ...]:
        """Fields of a training batch the trainer leaves on the host, where the data loader made
        them, instead of copying them to the model's device (``epoch.train_epoch_on_device``): a
        model that reads the batch's shape from them (MacridVAE: how many items its users have)
        reads it there, without waiting for the device, and copies them itself. Default: none."""
        return ()

    def on_epoch_end(self) -> None:
        """Called by the trainer after every training epoch, inside its timing (MacridVAE's
        adaptive K merges concepts here)."""

    def report(self) -> dict:
        """Numbers the model reports about itself after training and testing (AD-DRL: attribute
        accuracy), with the best model loaded; they go into the run's result as ``model_report``."""
        return {}

    def evaluation_cache(self):
        """A context manager around one evaluation pass (see the class docstring); by default it
        keeps nothing."""
        return contextlib.nullcontext(self)


def evaluation_pass(model):
    """``model.evaluation_cache()``, or a block that does nothing for models without the hook."""
    hook = getattr(model, "evaluation_cache", None)
    return hook() if callable(hook) else contextlib.nullcontext(model)


class ConceptModel(Protocol):
    """What the analysis reads of a model with concepts (MacridVAE, SEM-MacridVAE): the parts
    named in :data:`CONCEPT_MODEL_PARTS`; a model without one of them is refused by name.
    ``concept_logits`` is optional (without it the analysis computes s_ik from h, m, ``similarity``
    and ``tau``), and ``history`` is read by the sections on users."""

    item_embedding: torch.Tensor  # h_i, (n_items, d)
    prototypes: torch.Tensor  # m_k, (K, d)
    tau: float  # temperature of the similarities, Eq. 6
    similarity: str  # "cosine" or "inner"
    history: sp.csr_matrix  # the user x item rows the encoder reads

    def log_concepts(self) -> torch.Tensor:
        """ln c_i for every item, (n_items, K), as the model uses it at test time."""

    def concept_logits(self) -> torch.Tensor:
        """s_ik = sim(h_i, m_k) / tau for every item, (n_items, K)."""

    def encode(self, batch, log_c: torch.Tensor):
        """(z_u, mu, ln variance ratio) for a batch of user rows (``user_rows``)."""

    def user_rows(self, users: torch.Tensor):
        """The rows of ``history`` of the given internal user ids, as the encoder reads them."""


CONCEPT_MODEL_PARTS = ("item_embedding", "prototypes", "tau", "similarity", "log_concepts", "encode", "user_rows")

__all__ = ["CONCEPT_MODEL_PARTS", "ConceptModel", "Hyperparameter", "ModelHooks", "evaluation_pass"]
