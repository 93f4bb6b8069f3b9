#!/usr/bin/python3
"""Runs the Python package's tests with pytest, for ctest (`python_tests`).

Without pytest or numpy the tests cannot run: under CI=true that is a failure, otherwise a skip
(exit 77) that says what to install.
"""
import os
import sys

try:
    import numpy  # noqa: F401
    import pytest
except ImportError as missing:
    reason = f"{missing.name} is missing (scripts/install-deps installs python3-pytest and python3-numpy)"
    if os.environ.get("CI") == "true":
        print(f"python tests: {reason}", file=sys.stderr)
        sys.exit(1)
    print(f"python tests skipped: {reason}", file=sys.stderr)
    sys.exit(77)

here = os.path.dirname(os.path.abspath(__file__))
sys.exit(pytest.main([here, "-p", "no:cacheprovider", *sys.argv[1:]]))
