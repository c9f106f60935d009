"""Small fixes that let RecBole 1.2.1's own models run on the library versions installed today.

RecBole's graph models (LightGCN, NGCF, SpectralCF, GCMC, NCL, KGIN, MCCLK) build their
adjacency matrix with ``dok_matrix._update(dict)``, a private method that SciPy removed when
``dok_matrix`` stopped being a dict subclass (SciPy 1.13): the models then fail with
``AttributeError: 'dok_matrix' object has no attribute '_update'``. :func:`apply` restores it as a
plain vectorised assignment. It changes nothing where SciPy still has the method.

RecBole 1.2.1 also triggers FutureWarnings of pandas 2.2 and torch 2.4+ on every run (chained
``fillna(inplace=True)``, ``Series.agg(len)``, ``torch.cuda.amp.GradScaler``): they announce
changes in versions this package pins away from (pandas < 3) or concern code RecBole runs with
the feature off (the scaler is created disabled). :func:`filter_known_warnings` hides exactly
those, by message and by the RecBole module that raises them, so any other warning still shows.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp


def _dok_update(self, entries: dict) -> None:
    """``A[r, c] = v`` for every ``(r, c): v`` of ``entries`` (what the removed method did)."""
    if not entries:
        return
    keys = np.fromiter((k for pair in entries for k in pair), dtype=np.int64, count=2 * len(entries)).reshape(-1, 2)
    values = np.fromiter(entries.values(), dtype=self.dtype, count=len(entries))
    self[keys[:, 0], keys[:, 1]] = values


def apply() -> None:
    for cls in {sp.dok_matrix, getattr(sp, "dok_array", sp.dok_matrix)}:
        if not hasattr(cls, "_update"):
            cls._update = _dok_update


# (category, message regex matched at the start of the message, module regex of RecBole's code
# that raises it): each one checked harmless for the versions pyproject.toml allows.
KNOWN_HARMLESS_WARNINGS = (
    # dataset.py's df[field].fillna(..., inplace=True): works under pandas < 3 (pinned), a no-op under 3.
    (FutureWarning, r"A value is trying to be set on a copy of a DataFrame or Series through chained "
                    r"assignment using an inplace method", r"recbole\.data\.dataset\.dataset"),
    # dataset.py's feat[field].agg(len) on sequence fields: same result with pandas < 3.
    (FutureWarning, r"using <built-in function len> in Series\.agg cannot aggregate and has been deprecated",
     r"recbole\.data\.dataset\.dataset"),
    # trainer.py builds amp.GradScaler(enabled=enable_scaler) even when the scaler is off (the default,
    # and always on a CPU-only machine); the deprecated name still works in the torch versions allowed.
    (FutureWarning, r"`torch\.cuda\.amp\.GradScaler\(args\.\.\.\)` is deprecated", r"recbole\.trainer\.trainer"),
)


def filter_known_warnings() -> None:
    """Hide :data:`KNOWN_HARMLESS_WARNINGS` (only those: same category, message and module).

    Safe to call more than once: ``warnings.filterwarnings`` replaces an identical filter.
    """
    for category, message, module in KNOWN_HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
