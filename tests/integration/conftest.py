"""pytest's part of the integration tests: they run the real tracer, as
root, on real workloads; what they share is in helpers.py."""
import os

import pytest

from helpers import TRACER


@pytest.fixture(autouse=True, scope="session")
def need_root():
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (BPF, uprobes)")
    assert os.path.exists(TRACER), "build/tracer missing: run make"
