"""Shadow mode: candidate policies and flows in, what they would have denied out.

:func:`recommender.shadow.core.run_shadow` replays flows through the exact
semantics; :mod:`recommender.report.shadow` renders the run as a report.
"""
