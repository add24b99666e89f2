"""Inventory: what the cluster holds (pods, services, namespaces, nodes, endpoint slices).

Takes inventory files (:mod:`~recommender.inventory.files`), the live API
(:mod:`~recommender.inventory.kube_api`) or manifests
(:mod:`~recommender.inventory.manifests`); checks each object as the API server
would (``k8s_validation``, ``k8s_defaults``, ``k8s_objects``) and gives a
:class:`recommender.model.Inventory`, plus the workload index the recommender
groups pods by (:mod:`~recommender.inventory.workloads`).
"""
