"""Exceptions and warnings raised by qeprop.

Every error a user can trigger with bad input derives from :class:`QEPError`, so that the command
line can report it in one line (and exit with status 2) instead of a traceback. Each error carries
an optional ``where`` (a file name, a term index, a field) that is prefixed to the message.
"""

from __future__ import annotations


class QEPError(Exception):
    """Base class of every error qeprop raises on purpose.

    Parameters
    ----------
    message:
        What went wrong and, where possible, what to do about it.
    where:
        The place of the problem, e.g. ``"problem.toml: terms[3].pauli"``; prefixed to the message.
    """

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)

    def located(self, where: str) -> QEPError:
        """A copy of this error whose location is ``where`` followed by the current one."""
        if self.where:
            sep = "" if self.where.startswith("[") else "."
            where = f"{where}{sep}{self.where}"
        return type(self)(self.message, where=where)


class PauliError(QEPError, ValueError):
    """A malformed Pauli string or an operation on incompatible Pauli strings."""


class ProblemError(QEPError, ValueError):
    """An invalid problem definition: unknown parameter, wrong shape, NaN value, bad option."""


class QuadratureError(ProblemError):
    """A malformed quadrature string (oscillator modes) or a quadrature sum that does not fit."""


class SolverError(QEPError, RuntimeError):
    """An equilibrium solver failed."""


class ConvergenceError(SolverError):
    """An iterative solver did not reach its tolerance within its iteration budget."""


class DegeneracyError(SolverError):
    """The requested eigenstate is (near-)degenerate and the degeneracy mode is ``"error"``."""


class ProblemTooLargeError(QEPError, MemoryError):
    """The memory a computation needs exceeds the allowed budget (checked before allocating)."""


class QEPWarning(UserWarning):
    """Base class of qeprop warnings."""


class NudgeWindowWarning(QEPWarning):
    """The nudge strength lies outside the window where the QEP estimate is meaningful.

    The window is ``eps_solver * ||H|| / gap  <<  nudge * |error signal|  <<  gap``: below it
    the difference of expectation values drowns in solver error, above it the nudge is no longer
    a small perturbation of the (near-)degenerate manifold.
    """


class LevelCrossingWarning(QEPWarning):
    """An excited eigenstate followed through a nudge has small overlap with its starting state."""
