"""RecBole's negative sampler with its used items held as sorted arrays instead of Python sets.

RecBole's ``Sampler`` keeps, for every phase, one Python set of items per user, built by a loop
over every interaction of every phase (train, train + valid, train + valid + test): at 10M
interactions that is tens of seconds and gigabytes of set entries. :class:`ArraySampler` keeps
each phase's (user, item) pairs as one sorted array of keys ``user * item_num + item`` and tests
membership with a binary search. It draws the same random numbers in the same order as RecBole's
and so returns the same negatives for the same seed (``tests/data/test_scalable.py``).
"""

from __future__ import annotations

import numpy as np
import torch
from recbole.sampler import RepeatableSampler, Sampler


class UsedItems:
    """Each user's used items (all phases up to one), as sorted ``user * item_num + item`` keys.

    Indexing as RecBole's array of sets (``used[uid]`` is a set, ``used[uids]`` an object array
    of sets) still works for RecBole code that reads ``sampler.used_ids`` directly.
    """

    def __init__(self, users: np.ndarray, items: np.ndarray, user_num: int, item_num: int,
                 also: "UsedItems | None" = None):
        """The (user, item) pairs given, plus those of ``also`` (an earlier phase's) if given."""
        self.user_num, self.item_num = user_num, item_num
        keys = users.astype(np.int64) * item_num + items
        self.keys = np.unique(keys) if also is None else np.union1d(also.keys, keys)
        self.indptr = np.searchsorted(self.keys, np.arange(user_num + 1, dtype=np.int64) * item_num)

    def union(self, users: np.ndarray, items: np.ndarray) -> "UsedItems":
        """These pairs and another phase's."""
        return UsedItems(users, items, self.user_num, self.item_num, also=self)

    def counts(self) -> np.ndarray:
        return np.diff(self.indptr)

    def _check(self, users: np.ndarray) -> None:
        # RecBole's array of sets raises IndexError for an unknown user; its callers rely on that.
        if len(users) and (users.min() < -self.user_num or users.max() >= self.user_num):
            raise IndexError(f"user id out of range [0, {self.user_num})")

    def items_of(self, user: int) -> np.ndarray:
        """The user's used items, ascending."""
        self._check(np.array([user]))
        user = int(user) % self.user_num
        return self.keys[self.indptr[user] : self.indptr[user + 1]] - user * self.item_num

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (user, item) pair is used."""
        users = np.asarray(users, dtype=np.int64)
        self._check(users)
        wanted = (users % self.user_num) * self.item_num + items
        at = np.searchsorted(self.keys, wanted).clip(max=len(self.keys) - 1)
        return self.keys[at] == wanted if len(self.keys) else np.zeros(len(wanted), dtype=bool)

    def __len__(self) -> int:
        return self.user_num

    def __getitem__(self, user):
        if np.ndim(user) == 0:
            return set(self.items_of(user).tolist())
        sets = np.empty(len(user), dtype=object)
        sets[:] = [set(self.items_of(u).tolist()) for u in user]
        return sets

    def __iter__(self):
        return (self[user] for user in range(self.user_num))


class ArraySampler(Sampler):
    """RecBole's ``Sampler`` (same draws, same negatives) over :class:`UsedItems`."""

    def get_used_ids(self):
        used_item_id, last = {}, None
        for phase, dataset in zip(self.phases, self.datasets):
            users = dataset.inter_feat[self.uid_field].numpy()
            items = dataset.inter_feat[self.iid_field].numpy()
            last = used_item_id[phase] = (UsedItems(users, items, self.user_num, self.item_num) if last is None
                                          else last.union(users, items))
        if (last.counts() + 1 == self.item_num).any():  # [pad] is an item
            raise ValueError(
                "Some users have interacted with all items, "
                "which we can not sample negative items for them. "
                "Please set `user_inter_num_interval` to filter those users."
            )
        return used_item_id

    def sample_by_key_ids(self, key_ids, num):
        """RecBole's ``sample_by_key_ids``: redraw every value a key has used, until none has."""
        key_ids = np.array(key_ids)
        total_num = len(key_ids) * num
        if (key_ids == key_ids[0]).all():
            used = self.used_ids.items_of(key_ids[0])
            value_ids = self.sampling(total_num)
            check_list = np.arange(total_num)[np.isin(value_ids, used)]
            while len(check_list) > 0:
                value_ids[check_list] = value = self.sampling(len(check_list))
                check_list = check_list[np.isin(value, used)]
        else:
            value_ids = np.zeros(total_num, dtype=np.int64)
            check_list = np.arange(total_num)
            key_ids = np.tile(key_ids, num)
            while len(check_list) > 0:
                value_ids[check_list] = self.sampling(len(check_list))
                check_list = check_list[self.used_ids.contains(key_ids[check_list], value_ids[check_list])]
        return torch.tensor(value_ids, dtype=torch.long)


def _create_sampler(dataset, built_datasets, distribution, repeatable, alpha=1.0, base_sampler=None):
    """RecBole's ``recbole.data.utils._create_sampler``, with :class:`ArraySampler` for ``Sampler``."""
    if distribution == "none":
        return None
    if base_sampler is not None:
        base_sampler.set_distribution(distribution)
        return base_sampler
    if repeatable:
        return RepeatableSampler(["train", "valid", "test"], dataset, distribution, alpha)
    return ArraySampler(["train", "valid", "test"], built_datasets, distribution, alpha)


def create_samplers(config, dataset, built_datasets):
    """RecBole's ``recbole.data.utils.create_samplers`` with :class:`ArraySampler`: (train, valid, test)."""
    train_args, valid_args, test_args = (config[f"{phase}_neg_sample_args"] for phase in ("train", "valid", "test"))
    repeatable = config["repeatable"]
    base_sampler = _create_sampler(dataset, built_datasets, train_args["distribution"], repeatable, train_args["alpha"])
    train_sampler = base_sampler.set_phase("train") if base_sampler else None
    valid_sampler = _create_sampler(dataset, built_datasets, valid_args["distribution"], repeatable, base_sampler=base_sampler)
    valid_sampler = valid_sampler.set_phase("valid") if valid_sampler else None
    test_sampler = _create_sampler(dataset, built_datasets, test_args["distribution"], repeatable, base_sampler=base_sampler)
    test_sampler = test_sampler.set_phase("test") if test_sampler else None
    return train_sampler, valid_sampler, test_sampler
