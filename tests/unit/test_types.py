"""The type hints hold: mypy checks src/ (the annotations are the code's documentation of
its shapes, and a wrong one is a bug report waiting to be filed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "skiff"


@pytest.mark.slow
def test_mypy_finds_nothing():
    pytest.importorskip("mypy")
    p = subprocess.run([sys.executable, "-m", "mypy", "--ignore-missing-imports",
                        "--no-error-summary", str(SRC)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
