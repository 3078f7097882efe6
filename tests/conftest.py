"""Shared fixtures: where ../shared/data is, and skips with a reason where it is absent."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not present: {path} (tests using ../shared/data skip without it)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip."""
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def release_dir(shared_data: Path) -> Path:
    """The authors' MiniSeg release: Pretrained/ and SegMaps/."""
    return _require(shared_data / "miniseg-release")


@pytest.fixture(scope="session")
def ct100_dir(shared_data: Path) -> Path:
    """Real COVID-19-CT100 (tr_im/, tr_mask/); ../shared/data is a data root for it."""
    return _require(shared_data / "COVID-19-CT100")


@pytest.fixture
def one_thread():
    """One torch thread for the test, restored afterwards: on a shared 2-core machine more threads thrash."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
