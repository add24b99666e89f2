"""Writers of the other policy kinds, all from the one NetworkPolicy model.

``--kind networkpolicy`` is :mod:`recommender.policy_io.policy_yaml`; ``cilium``
(:mod:`.cilium`), ``clusternetworkpolicy`` (:mod:`.cnp`, two tiers plus the namespaced
rest) and ``calico-staged`` (:mod:`.calico`) translate the same rules.
"""

KINDS: tuple[str, ...] = ("networkpolicy", "cilium", "clusternetworkpolicy", "calico-staged")
