"""CIDR grouping under an address budget."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.recommend.cidr import CidrGrouper, group_cidrs, host_cidr


def test_budget_zero_gives_exact_host_blocks_even_for_neighbours():
    blocks = group_cidrs(["203.0.113.4", "203.0.113.5", "2001:db8::7"])
    assert [b.cidr for b in blocks] == ["203.0.113.4/32", "203.0.113.5/32", "2001:db8::7/128"]
    assert all(b.extra == 0 for b in blocks)


def test_neighbours_merge_for_free_when_a_budget_is_given():
    blocks = group_cidrs(["203.0.113.4", "203.0.113.5"], budget=1)
    assert [b.cidr for b in blocks] == ["203.0.113.4/31"]
    assert blocks[0].admitted == 2
    assert blocks[0].extra == 0


def test_budget_is_never_exceeded_and_cheapest_merge_goes_first():
    ips = ["10.1.0.1", "10.1.0.2", "10.1.0.200"]
    g = CidrGrouper(budget=2).fit(ips)
    assert [b.cidr for b in g.blocks_] == ["10.1.0.0/30", "10.1.0.200/32"]
    assert g.extra_addresses_ == 2
    assert g.labels_.tolist() == [0, 0, 1]
    wide = CidrGrouper(budget=253).fit(ips)
    assert [b.cidr for b in wide.blocks_] == ["10.1.0.0/24"]
    assert wide.extra_addresses_ == 253


def test_forbidden_cluster_addresses_are_never_covered():
    ips = ["10.0.0.1", "10.0.0.3"]
    assert [b.cidr for b in group_cidrs(ips, budget=10, forbidden=["10.0.0.2"])] == [
        "10.0.0.1/32",
        "10.0.0.3/32",
    ]


def test_families_are_kept_apart():
    blocks = group_cidrs(["2001:db8::1", "2001:db8::2", "192.0.2.1"], budget=10)
    assert [b.cidr for b in blocks] == ["192.0.2.1/32", "2001:db8::/126"]


@pytest.mark.parametrize("bad", [-1, 1.5])
def test_bad_budget_is_rejected(bad):
    with pytest.raises(ValueError, match="budget"):
        CidrGrouper(budget=bad).fit(["10.0.0.1"])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=4095), min_size=1, max_size=25),
    st.integers(min_value=0, max_value=300),
)
def test_property_blocks_cover_every_address_within_budget(offsets, budget):
    ips = [str(ipaddress.ip_address(0xC6120000 + o)) for o in offsets]
    g = CidrGrouper(budget=budget).fit(ips)
    assert g.extra_addresses_ <= budget
    assert sum(b.extra for b in g.blocks_) == g.extra_addresses_
    nets = [ipaddress.ip_network(b.cidr) for b in g.blocks_]
    for ip, label in zip(ips, g.labels_, strict=True):
        assert ipaddress.ip_address(ip) in nets[label]
    for a, b in zip(nets, nets[1:], strict=False):
        assert not a.overlaps(b)


def test_host_cidr():
    assert host_cidr("198.51.100.9") == "198.51.100.9/32"
