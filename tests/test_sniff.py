"""Format sniffing: each non-Hubble sample is named and read by its reader, Hubble and
inventories are not flows of another format."""

from __future__ import annotations

import gzip

import pytest

from recommender.flows import formats
from recommender.flows.sniff import read_head, sniff_file, sniff_format
from tests.conftest import SAMPLES

NAMED = {
    "aws-vpc-flow-logs/custom-v3-tcp-flags-doc-examples.log": "an AWS VPC flow log",
    "aws-vpc-flow-logs/custom-v3-transit-gateway-doc-examples.log": "an AWS VPC flow log",
    "aws-vpc-flow-logs/custom-v5-traffic-path-doc-examples.log": "an AWS VPC flow log",
    "aws-vpc-flow-logs/default-v2-doc-examples.log": "an AWS VPC flow log",
    "aws-vpc-flow-logs/elastic-integrations-test-v5-all-fields.log": "an AWS VPC flow log",
    "calico/flowlog-doc-example-no-aggregation.json": "a Calico flow log",
    "antrea/antctl-get-flowrecords-doc-example.json": "Antrea flow records (JSON)",
    "antrea/flowlogger-csv-test-fixture.csv": "an Antrea flow-aggregator CSV",
    "gcp-vpc-flow-logs/elastic-integrations-vpcflow-logentries.ndjson": "a GCP VPC flow log",
    "inspektor-gadget/kubeipresolver-doc-fragment.json": "Inspektor Gadget output",
    "inspektor-gadget/kubenameresolver-doc-fragment.json": "Inspektor Gadget output",
    "k8s-inventory/describecluster-2021-pods.json": "Kubernetes objects (JSON), not flow records",
}


@pytest.mark.parametrize(("sample", "name"), sorted(NAMED.items()), ids=sorted(NAMED))
def test_each_non_hubble_sample_is_named(sample, name):
    assert sniff_file(str(SAMPLES / sample)) == name


#: The reader each flow sample is detected for (the name in ``--format``).
DETECTED = {
    "aws-vpc-flow-logs/default-v2-doc-examples.log": "aws_vpc",
    "calico/flowlog-doc-example-no-aggregation.json": "calico",
    "gcp-vpc-flow-logs/elastic-integrations-vpcflow-logentries.ndjson": "gcp_vpc",
    "antrea/antctl-get-flowrecords-doc-example.json": "antrea_antctl",
    "antrea/flowlogger-csv-test-fixture.csv": "antrea_csv",
    "inspektor-gadget/kubeipresolver-doc-fragment.json": "inspektor_gadget",
    "inspektor-gadget/kubenameresolver-doc-fragment.json": "inspektor_gadget",
    "hubble/hubble-otel-testdata/basic-sample-10-flows.json": "hubble",
}


@pytest.mark.parametrize(("sample", "name"), sorted(DETECTED.items()), ids=sorted(DETECTED))
def test_each_flow_sample_is_detected_for_its_reader(sample, name):
    assert formats.detect(read_head(str(SAMPLES / sample))).name == name


@pytest.mark.parametrize("sample", sorted(p.name for p in (SAMPLES / "hubble").rglob("*.*json")))
def test_hubble_samples_are_not_named(sample):
    path = next((SAMPLES / "hubble").rglob(sample))
    assert sniff_file(str(path)) is None


@pytest.mark.parametrize(
    ("head", "name"),
    [
        (b"apiVersion: v1\nkind: List\nitems: []\n", "YAML (a Kubernetes manifest?)"),
        (b"a,b,c\n1,2,3\n4,5,6\n", "a CSV file"),
        (bytes(range(256)), "a binary file (not text)"),
        (gzip.compress(b"x" * 1000)[:10], "a gzip file that cannot be decompressed (truncated?)"),
    ],
    ids=["yaml", "csv", "binary", "truncated-gzip"],
)
def test_generic_kinds(head, name):
    assert sniff_format(head) == name


def test_gzip_is_sniffed_inside():
    aws = (SAMPLES / "aws-vpc-flow-logs" / "default-v2-doc-examples.log").read_bytes()
    assert sniff_format(gzip.compress(aws)) == "an AWS VPC flow log"
