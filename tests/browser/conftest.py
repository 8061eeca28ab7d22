"""Browser tests: Playwright driving Debian's Chromium (see tests/conftest.py for the launch
arguments and the ordering that runs these last)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The desk's builders: channels on every platform, another department's mailbox.
from tests.desk.conftest import billing_channel, channels, outsider  # noqa: F401

# Screenshots of every page the tests visit, for people to look at (and on failure).
SCREENSHOTS = Path(os.environ.get("CASELINE_SCREENSHOTS", "/tmp/caseline-screenshots"))


@pytest.fixture
def shots():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
