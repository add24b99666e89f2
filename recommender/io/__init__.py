"""Serialisation edges: Kubernetes YAML/JSON in and out."""
