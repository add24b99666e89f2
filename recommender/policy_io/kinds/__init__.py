"""Writers of the other policy kinds, all from the one NetworkPolicy model.

``--kind networkpolicy`` is :mod:`recommender.policy_io.policy_yaml`; ``cilium``
(:mod:`.cilium`) and ``calico-staged`` (:mod:`.calico`) translate the same rules.
"""

KINDS: tuple[str, ...] = ("networkpolicy", "cilium", "calico-staged")
