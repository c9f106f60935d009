"""Adam for models whose N x d tables get row-sparse gradients (MacridVAE with sampled softmax).

torch.optim.Adam updates every row of a table every step, also rows whose gradient is 0 (their
momentum still moves them), which makes a sampled-softmax step cost O(N d) however few items it
reads. :class:`RowSparseAdam` keeps torch.optim.Adam for the model's other parameters and gives
the tables torch.optim.SparseAdam, the "lazy" Adam: the moments and weights of the rows in the
sparse gradient are updated as Adam would, with the parameter's global step count for the bias
correction; the other rows, their moments included, stay as they are.
"""

from __future__ import annotations

import torch


class RowSparseAdam:
    """torch.optim.Adam (``dense``, built by the trainer as RecBole builds its optimizer) for the
    dense parameters plus torch.optim.SparseAdam for ``tables`` (sparse gradients only).

    ``weight_decay`` on the tables is Adam's coupled L2 (gradient += weight_decay * row) applied
    lazily, to the rows in the step's gradient only; ``dense`` applies its own to the rest.

    It offers what RecBole's trainer and this package's checkpoints use of an optimizer:
    ``zero_grad``, ``step``, ``state_dict``/``load_state_dict`` (a dict of the two optimizers'
    states, tensors and plain values: checkpoints still load with ``weights_only=True``) and
    ``param_groups`` (the two lists joined, the same dicts, so a change of lr reaches both).
    """

    def __init__(self, dense: torch.optim.Optimizer, tables: list[torch.nn.Parameter], lr: float,
                 weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.dense = dense
        self.rows = torch.optim.SparseAdam(tables, lr=lr, betas=betas, eps=eps)
        self.weight_decay = weight_decay

    @property
    def param_groups(self) -> list[dict]:
        return self.dense.param_groups + self.rows.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.dense.zero_grad(set_to_none)
        self.rows.zero_grad(set_to_none)

    @torch.no_grad()
    def _decay_rows(self) -> None:
        for group in self.rows.param_groups:
            for table in group["params"]:
                if table.grad is None:
                    continue
                grad = table.grad.coalesce()
                index = grad.indices()[0]
                table.grad = torch.sparse_coo_tensor(
                    grad.indices(), grad.values() + self.weight_decay * table[index], grad.shape,
                    is_coalesced=True, check_invariants=False,
                )

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self.weight_decay > 0:
            self._decay_rows()
        self.dense.step()
        self.rows.step()
        return loss

    def state_dict(self) -> dict:
        return {"dense": self.dense.state_dict(), "rows": self.rows.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"dense", "rows"}:
            raise ValueError(
                "This optimizer state is not a RowSparseAdam's (dense + rows): the checkpoint was trained with "
                "another optimizer (e.g. full softmax, or sampled softmax before row-wise updates)."
            )
        self.dense.load_state_dict(state["dense"])
        self.rows.load_state_dict(state["rows"])
