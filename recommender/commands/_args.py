"""Argument types shared by several commands."""

from __future__ import annotations

import argparse


def non_negative_int(text: str) -> int:
    """An ``argparse`` type: an integer >= 0, with a one-line error otherwise.

    >>> non_negative_int("3")
    3
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value
