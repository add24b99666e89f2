"""Collection settings for the whole tree (the doctests in recommender/ and tests/).

The Spark engine is an optional extra (``pip install -e '.[spark]'``): without it,
the two modules that import PySpark or sqlglot at import time are not collected for
their doctests, and tests marked ``spark`` (see tests/conftest.py) are skipped with
the reason. With the extra installed, as ``make test`` has it, everything runs.
"""

from __future__ import annotations

import importlib.util

#: True when the spark extra (PySpark and sqlglot) is installed.
HAVE_SPARK = all(importlib.util.find_spec(m) is not None for m in ("pyspark", "sqlglot"))

collect_ignore = (
    []
    if HAVE_SPARK
    else ["recommender/observe/engines/spark.py", "recommender/observe/engines/spark_sql.py"]
)
