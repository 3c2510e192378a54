"""The trainer: bit-for-bit repeatable on the CPU, refuses stacks that cannot classify with the fix in
one sentence, stops on a NaN loss keeping the last good weights, honours stop and pause between steps,
and its weights written back into the stack make `run` give the trained model's outputs."""

from __future__ import annotations

import math
import threading
import time

import pytest
import torch
from torch import nn

from explorer.core.engine import run_stack
from explorer.core.examples import load_example
from explorer.core.layers import build_module
from explorer.core.stack import InputSpec, load_stack, save_stack, stack_from_dict
from explorer.core.training.datasets import Dataset, Split, make_xo
from explorer.core.training.trainer import (TrainControl, TrainError, TrainSettings, _augment, apply_states,
                                            history_plan, plan_training, train)


def tiny_xo(train_count=96, test_count=40, seed=0) -> Dataset:
    tx, ty = make_xo(train_count, (16, 16), 1, seed)
    sx, sy = make_xo(test_count, (16, 16), 1, seed + 100)
    return Dataset("xo", "xo", ["x", "o"], Split(tx, ty), Split(sx, sy), source="xo")


def tiny_stack(extra: list[dict] | None = None):
    return stack_from_dict({"seed": 0, "input": {"channels": 1, "size": [16, 16]}, "layers": [
        {"type": "Conv2d", "name": "conv1", "args": {"in_channels": 1, "out_channels": 4, "kernel_size": 3}},
        {"type": "BatchNorm2d", "name": "bn1", "args": {"num_features": 4}},
        {"type": "ReLU", "name": "relu1"},
        {"type": "MaxPool2d", "name": "pool1", "args": {"kernel_size": 2}},
        {"type": "Flatten", "name": "flatten1"},
        {"type": "Dropout", "name": "drop1", "args": {"p": 0.2}},
        {"type": "Linear", "name": "fc1", "args": {"in_features": 196, "out_features": 2}},
        *(extra or []),
    ]})


SETTINGS = dict(batch_size=16, epochs=2, device="cpu")


def test_training_repeats_bit_for_bit_and_the_seed_matters():
    data = tiny_xo()
    a = train(tiny_stack(), data, TrainSettings(**SETTINGS))
    b = train(tiny_stack(), data, TrainSettings(**SETTINGS))
    c = train(tiny_stack(), data, TrainSettings(**SETTINGS, seed=1))
    assert a.status == "done" and a.steps == 12 and len(a.losses) == 12
    assert a.losses == b.losses
    assert all(torch.equal(a.states[n][k], b.states[n][k]) for n in a.states for k in a.states[n])
    assert a.losses != c.losses
    assert [e.epoch for e in a.epochs] == [1, 2]
    assert a.losses[-1] < a.losses[0]
    # BatchNorm's running statistics are trained state too.
    assert not torch.equal(a.states["bn1"]["running_mean"], torch.zeros(4))


@pytest.mark.parametrize("optimizer,schedule", [("sgd", "step"), ("adamw", "cosine"), ("adam", "none")])
def test_optimisers_and_schedules(optimizer, schedule):
    result = train(tiny_stack(), tiny_xo(), TrainSettings(**SETTINGS, optimizer=optimizer, schedule=schedule,
                                                          lr=0.01, weight_decay=1e-4))
    assert result.status == "done"
    last_lr = result.epochs[-1].lr
    # 12 steps: step decays x0.1 after steps 4 and 8; cosine is near 0 at the last step.
    expected = {"none": 0.01, "step": 0.0001, "cosine": 0.01 * (1 + math.cos(math.pi * 11 / 12)) / 2}[schedule]
    assert last_lr == pytest.approx(expected, rel=1e-9)


def test_trained_state_makes_run_give_the_trained_models_outputs(tmp_path):
    data = tiny_xo()
    result = train(tiny_stack(), data, TrainSettings(**SETTINGS))
    trained = apply_states(tiny_stack(), result.states)
    assert tiny_stack().layers[0].state is None            # the original is not changed
    path = tmp_path / "trained.json"
    save_stack(trained, path)
    reloaded = load_stack(path)
    x = data.test.floats()
    out = run_stack(reloaded, x, "cpu").layers[-1].output
    # The same network written with plain torch modules and the trained tensors.
    s = result.states
    reference = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Dropout(0.2), nn.Linear(196, 2)).eval()
    reference[0].load_state_dict(s["conv1"])
    reference[1].load_state_dict(s["bn1"])
    reference[6].load_state_dict(s["fc1"])
    with torch.no_grad():
        expected = reference(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    accuracy = float((out.argmax(1) == data.test.labels).float().mean())
    assert accuracy == pytest.approx(result.evaluation.accuracy)
    assert result.evaluation.accuracy == result.epochs[-1].test_accuracy
    confusion = result.evaluation.confusion
    assert int(confusion.sum()) == 40
    assert int(confusion.diagonal().sum()) == round(accuracy * 40)
    for index, true, predicted in result.evaluation.misclassified:
        assert int(data.test.labels[index]) == true and int(out[index].argmax()) == predicted != true


def test_nan_loss_stops_at_once_and_keeps_the_last_good_weights():
    stack = tiny_stack()
    stack.layers[1].enabled = False          # BatchNorm would tame the exploding weights
    result = train(stack, tiny_xo(), TrainSettings(**SETTINGS, optimizer="sgd", lr=1e30, momentum=0.0))
    assert result.status == "nan"
    assert f"at step {len(result.losses) + 1} (epoch 1)" in result.message
    assert "lower learning rate" in result.message and "kept the weights from the start" in result.message
    assert result.epochs == []
    start = build_module(stack.layers[0], stack.seed).state_dict()
    assert torch.equal(result.states["conv1"]["weight"], start["weight"])


def test_stop_and_pause_between_steps():
    control = TrainControl()
    seen = []

    def on_step(info):
        seen.append(info.step)
        if info.step == 5:
            control.stop()

    result = train(tiny_stack(), tiny_xo(), TrainSettings(**SETTINGS), control, on_step=on_step)
    assert result.status == "stopped" and result.steps == 5 and seen == [1, 2, 3, 4, 5]
    assert len(result.epochs) == 1 and "Stopped by the user" in result.message

    control = TrainControl()
    resumed = threading.Timer(0.4, control.resume)

    def pause_at_two(info):
        if info.step == 2:
            control.pause()
            resumed.start()

    started = time.perf_counter()
    result = train(tiny_stack(), tiny_xo(), TrainSettings(**SETTINGS), control, on_step=pause_at_two)
    assert result.status == "done" and result.steps == 12
    assert time.perf_counter() - started >= 0.4


def test_epoch_callbacks_snapshots_and_live_weights(monkeypatch):
    import explorer.core.training.trainer as trainer
    monkeypatch.setattr(trainer, "LIVE_SECONDS", 0.0)
    epochs, live = [], []
    result = train(tiny_stack(), tiny_xo(), TrainSettings(**SETTINGS), on_epoch=epochs.append,
                   on_step=lambda i: live.append(i.states))
    assert [s.epoch for s in result.snapshots] == [0, 1, 2]
    assert torch.equal(result.snapshots[2].states["fc1"]["weight"], result.states["fc1"]["weight"])
    assert all(states is not None for states in live)
    assert [e.record.epoch for e in epochs] == [1, 2]
    assert torch.equal(epochs[1].states["conv1"]["weight"], result.states["conv1"]["weight"])


def test_history_budget():
    lenet = load_example("lenet_cifar")
    snapshot = sum(t.numel() * 4 for s in lenet.layers if s.enabled
                   for t in build_module(s, device="meta").state_dict().values())
    kept, note = history_plan(snapshot, 50)
    assert kept == set(range(51)) and note is None and 51 * snapshot < 50 * 2 ** 20
    kept, note = history_plan(10 * 2 ** 20, 50)
    assert 0 in kept and 50 in kept and len(kept) == 4 and "keeps 4 of 51" in note
    kept, note = history_plan(100 * 2 ** 20, 5)
    assert kept == set() and "too big" in note


def test_augmentation_is_a_padded_crop_or_its_mirror():
    x = torch.rand(6, 3, 8, 8)
    out = _augment(x, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(6):
        crops = [padded[i, :, oy:oy + 8, ox:ox + 8] for oy in range(9) for ox in range(9)]
        assert any(torch.equal(out[i], c) or torch.equal(out[i], c.flip(2)) for c in crops)


# ---------------------------------------------------------------- refusals
def _lenet(keep: int):
    stack = load_example("lenet_cifar")
    stack.layers = stack.layers[:keep]
    return stack


def test_refusals_name_the_fix():
    with pytest.raises(TrainError) as e:
        plan_training(_lenet(6), (3, 32, 32), 10)
    assert str(e.value) == "The last layer gives [N, 16, 5, 5]; add Flatten and Linear(400, 10) for 10 classes."
    with pytest.raises(TrainError) as e:
        plan_training(_lenet(7), (3, 32, 32), 10)
    assert str(e.value) == "The last layer gives [N, 400]; add Linear(400, 10) for 10 classes."
    with pytest.raises(TrainError) as e:
        plan_training(load_example("lenet_cifar"), (3, 32, 32), 2)
    assert str(e.value) == ("The last Linear 'fc3' gives 10 outputs but the data has 2 classes; "
                            "set its out_features to 2.")
    with pytest.raises(TrainError, match="cannot run on \\[1, 1, 28, 28\\] images"):
        plan_training(load_example("lenet_cifar"), (1, 28, 28), 10)
    relu_only = stack_from_dict({"layers": [{"type": "Flatten"}]})
    with pytest.raises(TrainError, match="add Linear\\(784, 2\\)"):
        plan_training(relu_only, (1, 28, 28), 2)
    with pytest.raises(TrainError, match="learning rate must be a number above 0"):
        train(tiny_stack(), tiny_xo(), TrainSettings(lr=0))


def test_a_softmax_last_trains_on_the_logits_before_it():
    stack = tiny_stack([{"type": "Softmax", "name": "probs", "args": {"dim": 1}}])
    plan = plan_training(stack, (1, 16, 16), 2)
    assert plan.upto == 7 and "Softmax" in plan.notes[0] and "logits before it" in plan.notes[0]
    result = train(stack, tiny_xo(), TrainSettings(**SETTINGS))
    plain = train(tiny_stack(), tiny_xo(), TrainSettings(**SETTINGS))
    assert result.losses == plain.losses
    assert any("logits before it" in n for n in result.notes)
    assert "probs" not in result.states
