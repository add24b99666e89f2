"""One declared vocabulary (issue 19): identity columns, verdicts, directions, separators.

The words are declared in :mod:`recommender.vocabulary` only; these tests fail when a
module declares its own copy again (the drift the issue found: identity columns three
times, ``chr(30)`` written six times).
"""

from __future__ import annotations

import re
from pathlib import Path

from recommender import model, vocabulary
from recommender.observe.engines import aggregate
from recommender.observe.store import db

PACKAGE = Path(vocabulary.__file__).parent


def _sources() -> dict[str, str]:
    return {
        str(p.relative_to(PACKAGE)): p.read_text()
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.name != "vocabulary.py"
    }


def test_the_tables_use_the_declared_identity() -> None:
    assert model.OBSERVATION_COLUMNS[:12] == vocabulary.IDENTITY_COLUMNS[:12]
    identity = tuple(c for c in model.OBSERVATION_COLUMNS if c in vocabulary.IDENTITY_COLUMNS)
    assert identity == vocabulary.IDENTITY_COLUMNS
    assert db.STORE_COLUMNS[1 : 1 + len(vocabulary.IDENTITY_COLUMNS)] == vocabulary.IDENTITY_COLUMNS
    assert aggregate.SORT_COLUMNS is vocabulary.IDENTITY_COLUMNS
    assert tuple(f"v_{v}" for v in (*vocabulary.VERDICTS, "policy_denied")) == db.VERDICT_COLUMNS


def test_no_module_spells_the_separator_or_redeclares_a_word() -> None:
    redeclared = re.compile(
        r"^(ID_SEP|VERDICTS|DIRECTIONS|IDENTITY_COLUMNS|PROTOCOLS|PEER_KINDS)\s*[:=]", re.M
    )
    found = {
        name: hits
        for name, text in _sources().items()
        if (hits := redeclared.findall(text) + re.findall(r"chr\(30\)|\\x1e", text))
    }
    assert found == {}


def test_the_literal_types_match_their_tuples() -> None:
    from typing import get_args

    assert get_args(vocabulary.Verdict) == vocabulary.VERDICTS
    assert get_args(vocabulary.Decided) == vocabulary.DECIDED
    assert get_args(vocabulary.Direction) == vocabulary.DIRECTIONS
    assert get_args(vocabulary.PeerKind) == vocabulary.PEER_KINDS
    assert set(vocabulary.DECIDED) <= set(vocabulary.VERDICTS)
