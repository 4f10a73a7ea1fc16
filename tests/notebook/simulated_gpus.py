"""Simulated GPU descriptions shared by the notebook-side tests."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def two_gpus() -> dict:
    """A fresh copy of fixtures/two-gpus.json (tests may change it)."""
    return json.loads((FIXTURES / "two-gpus.json").read_text())
