"""Evaluate: policies, an inventory and flows in, quality figures out.

:mod:`~recommender.evaluate.score` measures a policy set (allowed vs needed
reachability, denied legitimate flows); :mod:`~recommender.evaluate.baselines`
builds the simple policy sets a recommendation is compared against;
:mod:`~recommender.evaluate.measure` runs it all on files (``netpol score``).
"""
