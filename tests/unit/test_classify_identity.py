"""The classifier's outputs are byte-identical to the committed digests (a fixed sample).

``python -m eval.classifier_identity`` checks all 12,000 labelled items; this test checks
the sample of ``sample_inputs`` (feed and Ukrainian/Russian items, 2014 and fundus full
articles, four 20,000-character bodies), so a speed change that moves any score, topic or
evidence string fails here in seconds.
"""

from __future__ import annotations

import json

import pytest

import worker.classify
from eval.classifier_eval import DEFAULT_DATA_DIR
from eval.classifier_identity import DIGESTS, digest, sample_inputs

pytestmark = pytest.mark.skipif(
    not DEFAULT_DATA_DIR.is_dir(), reason="../shared/data not available"
)


def test_sampled_outputs_match_the_committed_digests() -> None:
    expected: dict[str, str] = json.loads(DIGESTS.read_text(encoding="utf-8"))["sample"]
    sample = sample_inputs()
    assert sorted(item.key for item in sample) == sorted(expected)
    differing = [item.key for item in sample if digest(worker.classify, item) != expected[item.key]]
    assert differing == [], f"outputs changed for {len(differing)} inputs: {differing[:5]}"
