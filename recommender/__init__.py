"""netpol-recommender: least-privilege Kubernetes NetworkPolicies from observed flows."""

__version__ = "0.1.0.dev0"
