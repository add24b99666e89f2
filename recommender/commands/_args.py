"""Argument types shared by several commands."""

from __future__ import annotations

import argparse


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """An ``argparse`` type: an integer >= 0, with a one-line error otherwise.

    >>> non_negative_int("3")
    3
    """
    return _int_at_least(text, 0)


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer >= 1.

    >>> positive_int("1")
    1
    """
    return _int_at_least(text, 1)
