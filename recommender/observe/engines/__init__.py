"""Aggregation engines: embedded (DuckDB) and distributed (Spark)."""
