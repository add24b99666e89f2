"""NetworkPolicy model -> Calico ``StagedKubernetesNetworkPolicy`` (``projectcalico.org/v3``).

Calico's staged policies let the CNI report would-be verdicts before enforcing:
"StagedKubernetesNetworkPolicy ... has the same spec as a Kubernetes network
policy" (Calico staged policy reference). The rules are the v1 output's, the
apiVersion and kind differ. A staged policy is not enforced, so the semantics
engine leaves it out of every verdict (``load_policies`` skips and lists it).
"""

from __future__ import annotations

from typing import Any

from recommender.model import NetworkPolicy
from recommender.policy_io.policy_yaml import policy_to_dict

API_VERSION = "projectcalico.org/v3"
KIND = "StagedKubernetesNetworkPolicy"


def staged_policy_dict(policy: NetworkPolicy) -> dict[str, Any]:
    """The v1 dict with Calico's staged apiVersion and kind."""
    return {**policy_to_dict(policy), "apiVersion": API_VERSION, "kind": KIND}
