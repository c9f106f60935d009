"""Users per step on a GPU (device_settings.apply_gpu_step_defaults), checked on Configs built here
(a CPU machine: the GPU case is applied to them explicitly, as Config does on a GPU)."""

import math

import pytest

from recbole_disentangle.config import Config
from recbole_disentangle.device_settings import apply_gpu_step_defaults
from recbole_disentangle.errors import ConfigError


def config(model="MacridVAE", **settings):
    return Config(model, "ml-100k", config_dict=settings)


def test_a_cpu_run_keeps_the_papers_100_users_per_step():
    cpu = config()
    assert cpu.device_changes == {} and cpu["train_batch_size"] == 100 and cpu["learning_rate"] == 0.001
    assert apply_gpu_step_defaults(cpu, "cpu") == {}


def test_a_gpu_run_takes_gpu_train_batch_size_and_scales_the_default_learning_rate():
    gpu = config()
    changed = apply_gpu_step_defaults(gpu, "cuda")
    assert gpu["train_batch_size"] == 2048
    assert gpu["learning_rate"] == pytest.approx(0.001 * math.sqrt(2048 / 100))
    assert set(changed) == {"train_batch_size", "learning_rate"}
    # The console's "settings that differ from the defaults" shows them with the reason.
    gpu.device_changes = changed
    shown = {key: source for key, _, source in gpu.changed_settings()}
    assert "gpu_train_batch_size on a GPU" in shown["train_batch_size"]


def test_the_users_choices_win_on_a_gpu():
    chosen_batch = config(train_batch_size=300)
    assert apply_gpu_step_defaults(chosen_batch, "cuda") == {} and chosen_batch["train_batch_size"] == 300
    chosen_rate = config(learning_rate=0.01)
    changed = apply_gpu_step_defaults(chosen_rate, "cuda")
    assert set(changed) == {"train_batch_size"} and chosen_rate["learning_rate"] == 0.01
    switched_off = config(gpu_train_batch_size=0)
    assert apply_gpu_step_defaults(switched_off, "cuda") == {} and switched_off["train_batch_size"] == 100


def test_models_without_the_setting_are_left_alone():
    multivae = config("MultiVAE")
    before = (multivae["train_batch_size"], multivae["learning_rate"])
    assert apply_gpu_step_defaults(multivae, "cuda") == {}
    assert (multivae["train_batch_size"], multivae["learning_rate"]) == before


def test_a_bad_value_is_the_models_check_to_report():
    with pytest.raises(ConfigError, match="gpu_train_batch_size"):
        config(gpu_train_batch_size=-5)
