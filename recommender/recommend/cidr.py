"""Group external addresses into CIDR blocks under an explicit address budget.

The budget is the most addresses the blocks may admit beyond the observed
ones. Budget 0 keeps every address as its own ``/32`` (``/128``). With a
budget, blocks are merged bottom-up (agglomerative on the address prefix tree):
each step takes the merge of two neighbouring blocks that costs the fewest
extra addresses, ties to the lowest address, while the total stays within the
budget. A merge never covers a ``forbidden`` address (pod, node and Service
IPs), because an ipBlock also matches cluster addresses.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class CidrBlock:
    """One ipBlock: the CIDR, the observed addresses in it, and its size."""

    cidr: str
    members: tuple[str, ...]

    @property
    def admitted(self) -> int:
        """Addresses the block admits."""
        return ipaddress.ip_network(self.cidr).num_addresses

    @property
    def extra(self) -> int:
        """Addresses admitted beyond the observed ones."""
        return self.admitted - len(self.members)


def host_cidr(ip: str) -> str:
    """``/32`` or ``/128`` for one address.

    >>> host_cidr("10.0.0.1"), host_cidr("2001:db8::1")
    ('10.0.0.1/32', '2001:db8::1/128')
    """
    addr = ipaddress.ip_address(ip)
    return f"{addr}/{addr.max_prefixlen}"


def _cover(a: IPNetwork, b: IPNetwork) -> IPNetwork:
    """Smallest network containing both ``a`` and ``b`` (same family)."""
    lo, hi = int(a.network_address), int(b.broadcast_address)
    bits = a.max_prefixlen
    prefix = bits - (lo ^ hi).bit_length()
    return ipaddress.ip_network((lo, prefix), strict=False)


class _Family:
    """Agglomerative merging for the addresses of one IP family."""

    def __init__(self, addrs: list[int], version: int, forbidden: list[int]) -> None:
        make = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
        bits = 32 if version == 4 else 128
        self.blocks: list[IPNetwork] = [make((a, bits)) for a in addrs]
        self.counts = [1] * len(addrs)
        self.addrs = addrs
        self.forbidden = forbidden

    def extra(self) -> int:
        return sum(b.num_addresses - c for b, c in zip(self.blocks, self.counts, strict=True))

    def _covered(self, net: IPNetwork, i: int) -> range:
        lo, hi = i, i + 1
        while lo > 0 and self.blocks[lo - 1].subnet_of(net):  # type: ignore[arg-type]
            lo -= 1
        while hi + 1 < len(self.blocks) and self.blocks[hi + 1].subnet_of(net):  # type: ignore[arg-type]
            hi += 1
        return range(lo, hi + 1)

    def _is_forbidden(self, net: IPNetwork) -> bool:
        lo, hi = int(net.network_address), int(net.broadcast_address)
        k = bisect.bisect_left(self.forbidden, lo)
        return k < len(self.forbidden) and self.forbidden[k] <= hi

    def best_merge(self) -> tuple[int, IPNetwork, range] | None:
        best: tuple[int, IPNetwork, range] | None = None
        for i in range(len(self.blocks) - 1):
            net = _cover(self.blocks[i], self.blocks[i + 1])
            span = self._covered(net, i)
            before = sum(self.blocks[j].num_addresses - self.counts[j] for j in span)
            cost = net.num_addresses - sum(self.counts[j] for j in span) - before
            if self._is_forbidden(net):
                continue
            if best is None or cost < best[0]:
                best = (cost, net, span)
        return best

    def apply(self, net: IPNetwork, span: range) -> None:
        count = sum(self.counts[j] for j in span)
        self.blocks[span.start : span.stop] = [net]
        self.counts[span.start : span.stop] = [count]


class CidrGrouper(BaseEstimator):  # type: ignore[misc]
    """Cluster addresses into CIDR blocks, scikit-learn style.

    Parameters
    ----------
    budget
        Most addresses the blocks may admit beyond the observed ones (all
        families together). 0 keeps exact ``/32`` and ``/128`` blocks.
    forbidden
        Addresses no block may cover (cluster pod, node and Service IPs).

    Attributes
    ----------
    labels_ : ndarray of shape (n_addresses,)
        Index into ``blocks_`` for every input address.
    blocks_ : list of CidrBlock
        The blocks, sorted by family then address.
    extra_addresses_ : int
        Addresses admitted beyond the observed ones.

    >>> g = CidrGrouper(budget=2).fit(["10.0.0.1", "10.0.0.2", "10.0.0.9"])
    >>> [b.cidr for b in g.blocks_], g.extra_addresses_
    (['10.0.0.0/30', '10.0.0.9/32'], 2)
    """

    def __init__(self, budget: int = 0, forbidden: Sequence[str] = ()) -> None:
        self.budget = budget
        self.forbidden = forbidden

    def fit(self, X: Iterable[str], y: Any = None) -> CidrGrouper:  # noqa: N803 - sklearn API
        """Group the addresses in ``X`` (strings) and return ``self``."""
        if not isinstance(self.budget, int) or self.budget < 0:
            raise ValueError(f"budget must be a non-negative integer, got {self.budget!r}")
        addrs = [ipaddress.ip_address(x) for x in X]
        blocks: list[CidrBlock] = []
        spent = 0
        for version in (4, 6):
            fam_addrs = sorted({int(a) for a in addrs if a.version == version})
            if not fam_addrs:
                continue
            family = self._merge_family(fam_addrs, version, self.budget - spent)
            spent += family.extra()
            blocks.extend(self._blocks_of(family))
        self.blocks_ = blocks
        self.extra_addresses_ = spent
        where = {ipaddress.ip_address(m): i for i, b in enumerate(blocks) for m in b.members}
        self.labels_ = np.array([where[a] for a in addrs], dtype=np.int64)
        return self

    def _merge_family(self, addrs: list[int], version: int, budget: int) -> _Family:
        forbidden = sorted(
            int(ipaddress.ip_address(f))
            for f in self.forbidden
            if ipaddress.ip_address(f).version == version
        )
        family = _Family(addrs, version, forbidden)
        if self.budget == 0:
            return family
        while len(family.blocks) > 1:
            best = family.best_merge()
            if best is None or family.extra() + best[0] > budget:
                break
            family.apply(best[1], best[2])
        return family

    @staticmethod
    def _blocks_of(family: _Family) -> list[CidrBlock]:
        out = []
        for net in family.blocks:
            lo, hi = int(net.network_address), int(net.broadcast_address)
            start = bisect.bisect_left(family.addrs, lo)
            stop = bisect.bisect_right(family.addrs, hi)
            names = tuple(str(ipaddress.ip_address(a)) for a in family.addrs[start:stop])
            out.append(CidrBlock(str(net), names))
        return out


def group_cidrs(
    ips: Iterable[str], budget: int = 0, forbidden: Sequence[str] = ()
) -> list[CidrBlock]:
    """Blocks for ``ips`` under ``budget``; see :class:`CidrGrouper`.

    >>> [b.cidr for b in group_cidrs(["192.0.2.7", "2001:db8::1"])]
    ['192.0.2.7/32', '2001:db8::1/128']
    """
    return list(CidrGrouper(budget=budget, forbidden=forbidden).fit(list(ips)).blocks_)
