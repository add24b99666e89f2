"""Policy I/O: Kubernetes YAML/JSON in and out, SARIF, atomic writes.

Strict YAML reading with positions (``strict_yaml``), NetworkPolicy parsing and
dumping (``policy_yaml``), the output tree (``policy_writer``), SARIF for lint
findings (``sarif``, on :mod:`recommender.findings`) and atomic, never-overwriting
writes (``atomic``).
"""
