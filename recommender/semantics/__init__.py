"""Exact networking.k8s.io/v1 NetworkPolicy semantics, with explanations.

Build endpoints (:func:`endpoint_for_pod`, :func:`endpoint_for_ip`,
:func:`pod_endpoint`), compile policies once (:func:`compile_policies`), then ask
:meth:`PolicySet.decide` or :meth:`PolicySet.decide_many` for verdicts.
Every :class:`Decision` names the side that denied, the policies that isolate each
endpoint and the rules that allowed the flow.

Beside the engine: field validation as the API server does it (``validate``,
``policy_fields``), flow ends resolved to inventory pods (``resolve``,
``flow_endpoints``) and workload reachability (``reachability``). Takes only
:mod:`recommender.model` and :mod:`recommender.labels`; every stage builds on it.
"""

from recommender.semantics.endpoints import (
    ENDPOINT_KINDS,
    Endpoint,
    endpoint_for_ip,
    endpoint_for_pod,
    host_endpoint,
    pod_endpoint,
)
from recommender.semantics.engine import (
    CompiledPolicy,
    Decision,
    PolicySet,
    compile_policies,
)

__all__ = [
    "ENDPOINT_KINDS",
    "CompiledPolicy",
    "Decision",
    "Endpoint",
    "PolicySet",
    "compile_policies",
    "endpoint_for_ip",
    "endpoint_for_pod",
    "host_endpoint",
    "pod_endpoint",
]
