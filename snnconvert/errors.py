"""One exception family, so the CLI can turn any user-facing failure into one line and an exit code."""

from __future__ import annotations


class SnnConvertError(Exception):
    """A problem with the user's input or environment, reported as one line (no traceback)."""

    exit_code = 2


class InputError(SnnConvertError):
    """A file, field or argument given by the user is missing, malformed or inconsistent."""


class UnsupportedModelError(SnnConvertError):
    """The model uses ops or shapes the toolchain cannot handle; the message lists every offender."""


class GraphError(SnnConvertError):
    """The IR is inconsistent (bad node, shape mismatch); the message names the node."""


class NotBuiltError(SnnConvertError):
    """A command or option that exists in the interface but is not implemented yet."""

    exit_code = 3
