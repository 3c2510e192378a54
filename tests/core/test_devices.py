"""Choosing a device: auto prefers CUDA, then MPS, then the CPU; a missing device is a clear error."""

from __future__ import annotations

import pytest
import torch

from explorer.core import devices
from explorer.core.devices import (
    DeviceError,
    available_devices,
    device_label,
    is_out_of_memory,
    out_of_memory_message,
    resolve_device,
)
from explorer.core.engine import StackRunner


def _no_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)


def _fake_cuda(monkeypatch, count=2):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU 9000")


def test_cpu_always_works():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert "cpu" in available_devices()
    assert device_label(torch.device("cpu")) == "CPU"


def test_auto_falls_back_to_the_cpu(monkeypatch):
    _no_gpus(monkeypatch)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("") == torch.device("cpu")
    assert available_devices() == ["cpu"]
    assert StackRunner("auto").device == torch.device("cpu")


def test_auto_prefers_cuda_then_mps(monkeypatch):
    _fake_cuda(monkeypatch)
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert available_devices() == ["cpu", "cuda:0", "cuda:1", "mps"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("mps")


def test_named_gpus_when_present(monkeypatch):
    _fake_cuda(monkeypatch)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert device_label(torch.device("cuda", 1)) == "Fake GPU 9000 (cuda:1)"
    with pytest.raises(DeviceError, match=r"has 2 CUDA GPU\(s\) \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")
    with pytest.raises(DeviceError, match="cuda:N with N a number"):
        resolve_device("cuda:first")


@pytest.mark.parametrize("name,words", [
    ("cuda", "no CUDA GPU"),
    ("cuda:0", "no CUDA GPU"),
    ("mps", "no Apple GPU"),
    ("tpu", "Unknown device 'tpu'"),
    ("gpu", "auto, cpu, cuda, cuda:N or mps"),
])
def test_a_missing_device_is_a_clear_error(monkeypatch, name, words):
    _no_gpus(monkeypatch)
    with pytest.raises(DeviceError) as e:
        resolve_device(name)
    assert words in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(DeviceError):
        StackRunner(name)


def test_out_of_memory_recognised():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not is_out_of_memory(RuntimeError("Given groups=1, weight of size [6, 3, 3, 3]"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_out_of_memory_message(monkeypatch):
    _fake_cuda(monkeypatch)
    gpu = out_of_memory_message(torch.device("cuda", 0), "Conv2d 'conv1'")
    assert gpu == ("Conv2d 'conv1' ran out of memory on Fake GPU 9000 (cuda:0); "
                   "try a smaller batch or input size, or switch to the CPU.")
    cpu = out_of_memory_message(torch.device("cpu"), "Conv2d 'conv1'")
    assert cpu == "Conv2d 'conv1' ran out of memory on CPU; try a smaller batch or input size."


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runs_on_cuda_equal_the_cpu():
    from explorer.core.engine import run_stack
    from explorer.core.stack import stack_from_dict

    stack = stack_from_dict({"layers": [
        {"type": "Conv2d", "args": {"in_channels": 3, "out_channels": 4, "kernel_size": 3}},
        {"type": "ReLU"}, {"type": "MaxPool2d", "args": {"kernel_size": 2}},
        {"type": "MaxUnpool2d", "args": {"kernel_size": 2}, "indices_from": "pool1"}]})
    x = torch.rand(2, 3, 16, 16)
    cpu = run_stack(stack, x, "cpu")
    gpu = run_stack(stack, x, "cuda")
    assert gpu.ok and gpu.device.type == "cuda"
    for a, b in zip(cpu.layers, gpu.layers):
        assert b.output.device.type == "cuda"
        assert torch.allclose(a.output, b.output.cpu(), atol=1e-5)
