"""The command line: the parser (:mod:`~recommender.cli.parser`) and one module per subcommand.

Wiring only: each command module parses its arguments, calls the stages and
writes what they give. ``netpol`` runs :func:`console_main`.
"""

from recommender.cli.parser import console_main, main

__all__ = ["console_main", "main"]
