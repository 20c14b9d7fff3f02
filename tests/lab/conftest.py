"""Shortcuts into the session lab for the lab's own tests (the lab itself is tests/conftest.py's)."""

from __future__ import annotations

import pytest

from dzops.inventory.models import Inventory
from dzops.lab.builder import Lab
from tests.labkit import LabHandle


@pytest.fixture(scope="module")
def lab(punakha_lab: LabHandle) -> Lab:
    return punakha_lab.lab


@pytest.fixture(scope="module")
def inventory(punakha_lab: LabHandle) -> Inventory:
    return punakha_lab.inventory()
