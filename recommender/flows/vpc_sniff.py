"""Is a flow file AWS or GCP VPC flow logs? For engines that cannot read them yet."""

from __future__ import annotations

from recommender.errors import InputError
from recommender.flows import aws, gcp
from recommender.flows.sources import STDIN, FlowSource, open_binary


def vpc_format_of(path: str) -> str | None:
    """``aws_vpc``/``gcp_vpc`` when the file's first non-blank line looks like one, else
    None (also for stdin and unreadable files). For engines that cannot read them yet."""
    if path == STDIN:
        return None
    try:
        with open_binary(FlowSource(path, 0)) as fh:
            head = fh.read(64 << 10).decode("utf-8", errors="replace")
    except (OSError, EOFError, InputError):
        return None
    first = next((ln for ln in head.splitlines() if ln.strip()), "")
    if aws.is_aws_vpc(first):
        return aws.SOURCE_FORMAT
    return gcp.SOURCE_FORMAT if gcp.is_gcp_vpc(first) else None
