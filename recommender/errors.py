"""Errors that the command line maps to exit codes.

Every error keeps its context as attributes and builds its message in ``__str__``,
so the CLI can print exactly one clear line: what happened, where, and what to try.
"""

from __future__ import annotations


class RecommenderError(Exception):
    """Base class of every error the user can fix (exit code 2)."""

    exit_code = 2


class InputError(RecommenderError):
    """Bad input: a missing file, a malformed record, an unknown value.

    Parameters
    ----------
    path
        File the problem is in (``-`` for stdin), or None when not file-bound.
    line
        1-based line number, or None.
    reason
        What is wrong.
    hint
        What to try, optional.
    """

    def __init__(
        self, path: str | None, reason: str, line: int | None = None, hint: str | None = None
    ) -> None:
        super().__init__(path, reason, line, hint)
        self.path = path
        self.reason = reason
        self.line = line
        self.hint = hint

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line is not None else f"{self.path}: "
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{self.reason}{hint}"


class PolicyError(InputError):
    """An invalid NetworkPolicy, located by file, document index and field.

    >>> str(PolicyError("p.yaml", "spec.ingress[0].ports[0].port", "must be 1-65535", doc=2))
    'p.yaml: document 2: spec.ingress[0].ports[0].port: must be 1-65535'
    """

    def __init__(
        self,
        path: str | None,
        field: str,
        reason: str,
        doc: int | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(path, reason, line)
        self.field = field
        self.doc = doc

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line is not None else f"{self.path}: "
        doc = f"document {self.doc}: " if self.doc is not None else ""
        return f"{where}{doc}{self.field}: {self.reason}"


class OutputExistsError(RecommenderError):
    """Refuse to overwrite an existing output without ``--force``."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: already exists (pass --force to replace it)"


class GateFailed(RecommenderError):
    """A CI gate failed (shadow would deny traffic, lint found errors): exit code 3."""

    exit_code = 3

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class MissingDependencyError(RecommenderError):
    """An optional extra is needed (for example ``pyspark`` for ``--engine spark``)."""

    def __init__(self, feature: str, install: str, alternative: str | None = None) -> None:
        super().__init__(feature, install, alternative)
        self.feature = feature
        self.install = install
        self.alternative = alternative

    def __str__(self) -> str:
        tail = f", {self.alternative}" if self.alternative else ""
        return f"{self.feature} needs an optional dependency: run `{self.install}`{tail}"


class EngineUnavailableError(RecommenderError):
    """The requested engine cannot start (``--engine spark`` without a working Java)."""

    def __init__(self, engine: str, missing: str, detail: str | None = None) -> None:
        super().__init__(engine, missing, detail)
        self.engine = engine
        self.missing = missing
        self.detail = detail

    def __str__(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return (
            f"--engine {self.engine} cannot start: {self.missing}{detail}; install it, "
            "or drop --engine spark to use the embedded engine (the default)"
        )
