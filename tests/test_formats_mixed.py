"""A run over files of several formats reads each file by its own format.

The lines of all files arrive as one stream that can be scanned once; a mix of
formats unions one reader per format over it, so the stream must be shared, not
scanned again (it was: ``RecordBatchReader has already been consumed``).
"""

from __future__ import annotations

import json

from tests.conftest import FIXTURES, SAMPLES
from tests.vpc_support import observe

AWS = SAMPLES / "aws-vpc-flow-logs" / "custom-v3-tcp-flags-doc-examples.log"
HUBBLE = SAMPLES / "hubble" / "derived" / "legacy-json-bare-flow-from-basic-sample-10.json"
INVENTORY = json.loads((FIXTURES / "vpc" / "inventory.json").read_text(encoding="utf-8"))


def _counts(paths):
    stats = observe(paths).stats
    return stats.lines, stats.connections, len(observe(paths).observations)


def test_two_formats_in_one_run_add_up():
    aws, hubble = _counts([AWS]), _counts([HUBBLE])
    both = _counts([AWS, HUBBLE])
    assert both[0] == aws[0] + hubble[0]  # every line of both files read
    assert both[1] == aws[1] + hubble[1]  # connections of both, none lost or doubled
    assert both[2] == aws[2] + hubble[2]  # the two files share no workload
    assert aws[1] > 0
    assert hubble[1] > 0
