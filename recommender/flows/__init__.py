"""Flows: one module per input format, each giving good rows plus a reject count.

Hubble JSON (``hubble``, its SQL in ``hubble_sql`` and field checks in
``hubble_checks``), Parquet (``parquet``), format sniffing (``sniff``) and the
input list (``sources``). The FlowRecord columns they produce are
:data:`recommender.model.FLOW_COLUMNS` (plain data shared with every stage).
"""
