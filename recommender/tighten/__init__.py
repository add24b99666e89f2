"""Iterative tightening with guarantees (``netpol tighten``).

:func:`tighten` takes the current policies, the observations of a window and
the inventory, and returns a :class:`TightenResult`: the proposed set, every
change with its evidence, what was kept on purpose, widening proposals, hit
counts per policy/rule/peer/port, the self-check of the guarantees and the
semantic diff. :func:`build_report` / :func:`render_markdown` turn it into
``TIGHTEN.md`` and JSON; :func:`render_tighten_tree` into the output tree.
"""

from recommender.tighten.core import SelfCheck, TightenOptions, TightenResult, tighten
from recommender.tighten.holds import TightenHistory
from recommender.tighten.propose import ProposeOptions, is_dns_rule
from recommender.tighten.report import build_report, render_markdown
from recommender.tighten.text import CHANGE_KINDS, NOTE_KINDS, Change, Note
from recommender.tighten.tree import render_tighten_tree
from recommender.tighten.widen import Widening

__all__ = [
    "CHANGE_KINDS",
    "NOTE_KINDS",
    "Change",
    "Note",
    "ProposeOptions",
    "SelfCheck",
    "TightenHistory",
    "TightenOptions",
    "TightenResult",
    "Widening",
    "build_report",
    "is_dns_rule",
    "render_markdown",
    "render_tighten_tree",
    "tighten",
]
