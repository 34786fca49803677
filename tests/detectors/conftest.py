import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _fast_evidently(monkeypatch):
    from evidently_oracle import skip_widget_rendering

    skip_widget_rendering(monkeypatch)
