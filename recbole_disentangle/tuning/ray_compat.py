"""Ray across versions: the names that moved, and starting (or joining) Ray."""

from __future__ import annotations

import os

# Ray reads this when it is first imported: every trial's log lines, not "[repeated 3x across cluster]".
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

try:  # only sweeps import this package; without ray they stop at init_ray with ray's ImportError
    from ray.tune import Callback as RayCallback
except ImportError:
    RayCallback = object


class RayAPI:
    """The few names that moved between ray 2.6.3 (Python <= 3.11, RecBole's pin) and current 2.x.

    ray 2.6: ``ray.air.session.report/get_trial_dir``, ``ray.air.RunConfig``;
    ray 2.7-2.40: ``ray.train.report/get_context``, ``ray.train.RunConfig``;
    ray >= 2.41: ``ray.tune.report/get_context``, ``ray.tune.RunConfig`` (``ray.train``'s are
    deprecated inside Tune trials there).
    """

    def __init__(self):
        from ray import tune

        if hasattr(tune, "get_context"):
            self.report_fn, context = tune.report, tune.get_context
            self.trial_dir = lambda: context().get_trial_dir()
            self.RunConfig, self.FailureConfig = tune.RunConfig, tune.FailureConfig
            return
        try:
            from ray import train

            self.report_fn, context = train.report, train.get_context
            self.trial_dir = lambda: context().get_trial_dir()
            self.RunConfig, self.FailureConfig = train.RunConfig, train.FailureConfig
        except (ImportError, AttributeError):
            from ray import air
            from ray.air import session

            self.report_fn, self.trial_dir = session.report, session.get_trial_dir
            self.RunConfig, self.FailureConfig = air.RunConfig, air.FailureConfig

    def report(self, metrics: dict) -> None:
        self.report_fn(metrics)


def init_ray(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None,
             object_store_memory: int | None = None) -> None:
    """Join ``address`` (an existing cluster; else ``RAY_ADDRESS`` if set), or start a small local
    Ray without its dashboard.

    Without an address the local instance is asked for explicitly (``address="local"``): plain
    ``ray.init()`` would join any cluster a ``ray start`` left running on this machine and then
    refuse ``num_cpus``, or run the sweep on someone else's cluster.
    """
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
    else:
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                 object_store_memory=object_store_memory)
