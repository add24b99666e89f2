"""Recommend: observations and an inventory in, least-privilege policies out.

:func:`recommender.recommend.pipeline.recommend` checks the learning set
(``learning``), groups workloads (``groups``), classifies edges (``steps``,
scan exclusion in ``suspicious``), picks selectors (``selectors``) and CIDRs
(``cidr``), writes policies (``synthesize``), proves them against the
observations (``selfcheck``) and accounts for every connection
(``accounting``, ``coverage``, ``summary``).
"""
