"""Shared fixtures of tests/train."""

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One torch thread per test module: the models here are tiny, extra threads only add contention on a shared
    CI box (restored after the module so other test folders keep torch's default)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
