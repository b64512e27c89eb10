"""Shared test fixtures."""

import pytest
import torch


@pytest.fixture()
def one_torch_thread():
    """Tiny models: one intra-op thread is fastest and immune to a busy second core; restored after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
