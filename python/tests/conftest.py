"""Shared fixtures: the golden data in ../shared, the built `efcnet` executable, one Fuser.

Run by run_tests.py (ctest `python_tests`) with PYTHONPATH=build/python, EFCNET_BINARY and
EFCNET_SHARED_DIR set. What a test needs and cannot find is a failure under CI=true, a skip
with the reason otherwise.
"""
import os
import pathlib
import subprocess

import pytest

import efcnet

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED = pathlib.Path(os.environ.get("EFCNET_SHARED_DIR", REPO.parent / "shared"))
GOLDEN = SHARED / "golden"
NETWORK_WEIGHTS = GOLDEN / "efcnet_random.pth"
SEEM_WEIGHTS = GOLDEN / "seem_authors.pth"
# Fusion results may differ by a level between thread counts (so do the reference's): tests that
# compare with the CLI give both the same count.
THREADS = os.cpu_count()


def require(condition, reason):
    """Skips (or, under CI=true, fails) the calling test unless `condition` holds."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required under CI=true)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def golden():
    require(NETWORK_WEIGHTS.is_file() and SEEM_WEIGHTS.is_file(), f"no golden data in {GOLDEN}")
    return GOLDEN


@pytest.fixture(scope="session")
def efcnet_binary():
    binary = os.environ.get("EFCNET_BINARY", str(REPO / "build" / "efcnet"))
    require(os.access(binary, os.X_OK), f"no efcnet executable at {binary} (set EFCNET_BINARY)")
    return binary


@pytest.fixture(scope="session")
def run_cli(efcnet_binary):
    """Runs `efcnet ARGS...`; returns the CompletedProcess (text), failing the test on a non-zero exit."""

    def run(*args):
        result = subprocess.run([efcnet_binary, *map(str, args)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"efcnet {' '.join(map(str, args))}: {result.stderr}"
        return result

    return run


@pytest.fixture(scope="session")
def golden_fuser(golden):
    """The golden weights (seeded-random network, the authors' SEEM), loaded once for the session."""
    return efcnet.Fuser(NETWORK_WEIGHTS, SEEM_WEIGHTS, threads=THREADS)
