"""Observe: flow logs in, FlowRecords or hourly observations out.

The aggregation SQL (:mod:`~recommender.observe.engines.aggregate`, shared by
both engines and so kept beside them) runs on one of two engines
(:mod:`~recommender.observe.engines`: embedded DuckDB or Spark), chosen
by :func:`recommender.observe.factory.get_engine`; the long-window store
(:mod:`~recommender.observe.store`) keeps observations across runs. Arrows:
store -> factory -> engines -> aggregate -> engine interface -> fingerprint.
"""
