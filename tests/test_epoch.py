"""The trainer's epoch without a host sync per step (epoch.train_epoch_on_device): the same
training and the same loss sums as RecBole's loop, NaN still raised, RecBole's loop kept where
it is not the one RecBole would run."""

import copy

import pytest
import torch
from recbole.trainer.trainer import Trainer

from host_syncs import HostSyncRecorder, epoch_syncs
from model_contract import FAST
from recbole_disentangle.config import Config
from recbole_disentangle.quick_start import build
from recbole_disentangle.trainer import get_trainer, last_checkpoint_path
from recbole_disentangle.transfer import copy_to_device

# 16 users per step: 60 steps, enough for a float32 running sum to drift from RecBole's float64 one.
SMALL = {**FAST, "kfac": 4, "embedding_size": 16, "train_batch_size": 16}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("epoch"))
        config = Config("MacridVAE", "ml-100k", config_dict=SMALL)
        _, train_data, _, _, model = build(config)
    return config, train_data, model


def one_epoch(config, train_data, model, loop, loss_func=None):
    """``loop`` (RecBole's or the trainer's) run once from a copy of ``model`` and fixed random states."""
    model = copy.deepcopy(model)
    trainer = get_trainer(config, model)
    torch.manual_seed(3)
    train_data.generator.manual_seed(4)
    loss = loop(trainer, train_data, 0, loss_func=loss_func)
    return loss, {name: value.detach().clone() for name, value in model.state_dict().items()}


def test_the_trainer_replaces_only_recboles_own_loop(built, workdir):
    config, _, model = built
    trainer = get_trainer(config, copy.deepcopy(model))
    assert trainer._replaces_recbole_epoch()
    recvae = Config("RecVAE", "ml-100k", config_dict=FAST)  # RecVAETrainer has a loop of its own
    _, _, _, _, recvae_model = build(recvae)
    assert not get_trainer(recvae, recvae_model)._replaces_recbole_epoch()


@pytest.mark.parametrize("parts", [None, (0.25, 0.75)])
def test_the_epoch_trains_and_sums_losses_exactly_as_recboles_loop(built, workdir, parts):
    config, train_data, model = built

    def loss_func_of(trainer):
        if parts is None:
            return None
        return lambda interaction: tuple(share * trainer.model.calculate_loss(interaction) for share in parts)

    def recbole(trainer, data, epoch, loss_func):
        return Trainer._train_epoch(trainer, data, epoch, loss_func=loss_func_of(trainer))

    def ours(trainer, data, epoch, loss_func):
        assert trainer._replaces_recbole_epoch()
        return trainer._train_epoch(data, epoch, loss_func=loss_func_of(trainer))

    recbole_loss, recbole_state = one_epoch(config, train_data, model, recbole)
    our_loss, our_state = one_epoch(config, train_data, model, ours)
    assert type(our_loss) is type(recbole_loss)
    assert our_loss == recbole_loss  # the same float64 sums, in the same order
    assert recbole_state.keys() == our_state.keys()
    for name in recbole_state:
        assert torch.equal(recbole_state[name], our_state[name]), name
    # The model did train (a test that would pass for a loop that does nothing would prove nothing).
    assert not torch.equal(our_state["item_embedding"], model.state_dict()["item_embedding"])


def test_a_nan_loss_still_stops_training_naming_its_step(built, workdir):
    config, train_data, model = built
    trainer = get_trainer(config, copy.deepcopy(model))
    steps = []

    def nan_at_step_2(interaction):
        steps.append(len(steps))
        loss = trainer.model.calculate_loss(interaction)
        return loss * float("nan") if len(steps) == 3 else loss

    trainer._fitting = {"saved": True, "train_data": train_data, "valid_data": None}
    # (With autograd's anomaly detection on, the NaN step's backward would raise first.)
    with pytest.raises(ValueError, match=r"^Training loss is nan \(first at step 2 of epoch 0"), \
            torch.autograd.set_detect_anomaly(False):
        trainer._train_epoch(train_data, 0, loss_func=nan_at_step_2)
    assert len(steps) == len(train_data)  # found at the end of the epoch, not at the step
    # No checkpoint of the NaN weights: the last-epoch one is written after the epoch returns.
    assert not last_checkpoint_path(trainer.saved_model_file).exists()


def test_a_macridvae_epoch_waits_for_the_device_only_after_its_last_step(built, workdir):
    config, train_data, model = built
    trainer = get_trainer(config, copy.deepcopy(model))
    events = epoch_syncs(trainer, train_data)
    assert [event for event in events if event[0] != "after the last step"] == []
    # The NaN check and the loss sums, read once.
    assert len(events) == 2 and all("train_epoch_on_device" in caller for _, _, caller in events), events


def test_the_recorder_sees_the_waits_of_recboles_loop_and_of_device_ids(built, workdir):
    """The test above could pass for a recorder that sees nothing: here it must see waits."""
    config, train_data, model = built
    trainer = get_trainer(config, copy.deepcopy(model))
    trainer._replaces_recbole_epoch = lambda: False  # RecBole's loop: loss.item() and isnan every step
    events = epoch_syncs(trainer, train_data)
    assert {caller.rsplit(":", 1)[-1] for phase, _, caller in events if phase == "step 0"} >= {"_train_epoch", "_check_nan"}
    # Ids the recorder is not told are the host's, as device ids from RecBole's evaluation loop:
    # user_rows' read of them is a wait.
    with HostSyncRecorder() as recorder:
        model.user_rows(torch.arange(1, 20))
    assert any(caller.endswith(":user_rows") for _, _, caller in recorder.events)


def test_a_copy_to_the_device_is_the_tensor_on_a_cpu(workdir):
    values = torch.arange(5)
    assert copy_to_device(values, "cpu") is values  # nothing to pin or queue on a CPU
