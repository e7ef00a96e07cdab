"""Every embedded model samples exactly what it sampled when the fixture was recorded: same seed, same bytes.

Refactors of the models, samplers, export loading or the melody grammar must not change a single sample;
a change that is meant to (a retrained checkpoint) re-records with `python -m tests.embedded_samples --record`.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.embedded_samples import CASES, FIXTURE
from tests.helpers import ROOT, env


def test_every_embedded_model_samples_what_it_did() -> None:
    result = subprocess.run([sys.executable, "-m", "tests.embedded_samples"], env=env(1), cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    expected = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert sorted(expected) == sorted(CASES)
    for case in CASES:
        assert found[case] == expected[case], case
