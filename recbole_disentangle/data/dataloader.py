"""Data loaders the plugin adds to RecBole's."""

from __future__ import annotations

from logging import getLogger

import numpy as np
import scipy.sparse as sp
import torch
from recbole.data.dataloader.abstract_dataloader import AbstractDataLoader
from recbole.data.dataloader.general_dataloader import FullSortEvalDataLoader
from recbole.data.interaction import Interaction
from recbole.utils import ModelType

from recbole_disentangle.data.sampler import UsedItems


class UserBatchDataLoader(AbstractDataLoader):
    """Batches of distinct user ids: every user with a training interaction, once per epoch.

    MacridVAE's objective is a sum over users (Eq. 5), so a training step is a batch of users,
    each seen once per epoch. RecBole's UserDataLoader also yields users, but all ids, the
    padding id 0 and users without training interactions included.
    """

    def __init__(self, config, dataset, sampler=None, shuffle=True):
        self.uid_field = dataset.uid_field
        users = torch.unique(dataset.inter_feat[self.uid_field])
        self.user_list = Interaction({self.uid_field: users})
        self.sample_size = len(users)
        super().__init__(config, dataset, sampler, shuffle=shuffle)

    def _init_batch_size_and_step(self):
        self.step = self.config["train_batch_size"]
        self.set_batch_size(self.step)

    def collate_fn(self, index):
        return self.user_list[np.asarray(index)]


class CsrRows:
    """Per-user item lists held as CSR arrays, indexable as RecBole's object arrays of tensors
    (``rows[uid]`` a tensor, ``rows[uids]`` an object array of them: ``recbole.utils.case_study``
    reads ``uid2history_item`` so)."""

    def __init__(self, matrix: sp.csr_matrix):
        self.indptr, self.indices = matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64)

    def __getitem__(self, user):
        if np.ndim(user) == 0:
            return torch.from_numpy(self.indices[self.indptr[user] : self.indptr[user + 1]])
        rows = np.empty(len(user), dtype=object)
        rows[:] = [self[u] for u in user]
        return rows

    def gather(self, users: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(position of the user in ``users``, item) for every item of every user: the pairs
        RecBole's ``collate_fn`` builds with one ``torch.full_like`` and ``torch.cat`` per user."""
        starts, ends = self.indptr[users], self.indptr[users + 1]
        lengths = ends - starts
        offsets = np.cumsum(lengths) - lengths
        entries = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(offsets - starts, lengths)
        owner = np.repeat(np.arange(len(users), dtype=np.int64), lengths)
        return torch.from_numpy(owner), torch.from_numpy(self.indices[entries])


class ArrayFullSortEvalDataLoader(FullSortEvalDataLoader):
    """RecBole's ``FullSortEvalDataLoader`` with its per-interaction loop (``_set_user_property``)
    replaced by sparse matrices: the same users, in the same order, with the same positive and
    history items (each user's in ascending order rather than a Python set's order, which no
    metric reads). Used with :class:`~recbole_disentangle.data.sampler.ArraySampler`; with another
    sampler, or for sequential models, RecBole's own loader runs."""

    def __init__(self, config, dataset, sampler, shuffle=False):
        if config["MODEL_TYPE"] == ModelType.SEQUENTIAL or not isinstance(sampler.used_ids, UsedItems):
            super().__init__(config, dataset, sampler, shuffle=shuffle)
            return
        self.logger = getLogger()
        self.uid_field, self.iid_field = dataset.uid_field, dataset.iid_field
        self.is_sequential = False
        dataset.sort(by=self.uid_field, ascending=True)  # as RecBole's loader leaves the data set
        users = dataset.inter_feat[self.uid_field].numpy()
        items = dataset.inter_feat[self.iid_field].numpy()
        shape = (dataset.user_num, dataset.item_num)
        positive = sp.csr_matrix((np.ones(len(users), dtype=np.int32), (users, items)), shape=shape)
        positive.sum_duplicates()
        used = sampler.used_ids
        used_matrix = sp.csr_matrix((np.ones(len(used.keys), dtype=np.int32), used.keys % used.item_num, used.indptr),
                                    shape=shape)
        history = used_matrix - used_matrix.multiply(positive > 0)  # RecBole: used items minus positive ones
        history.eliminate_zeros()
        self.uid2items_num = np.diff(positive.indptr).astype(np.int64)
        self.uid2positive_item, self.uid2history_item = CsrRows(positive), CsrRows(history)
        self.uid_list = torch.from_numpy(np.flatnonzero(self.uid2items_num).astype(np.int64))
        self.user_df = dataset.join(Interaction({self.uid_field: self.uid_list}))
        self.sample_size = len(self.user_df)
        if shuffle:
            self.logger.warning("FullSortEvalDataLoader can't shuffle")
        AbstractDataLoader.__init__(self, config, dataset, sampler, shuffle=False)

    def collate_fn(self, index):
        if self.is_sequential:
            return super().collate_fn(index)
        user_df = self.user_df[np.array(index)]
        users = user_df[self.uid_field].numpy()
        return user_df, self.uid2history_item.gather(users), *self.uid2positive_item.gather(users)
