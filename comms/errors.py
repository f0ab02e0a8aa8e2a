"""The one error tree of comms.

    CommsError
     ├── InputError                 bad CLI argument or value a person typed      (exit 2)
     │    ├── PlanError             the plan files are invalid: a list of Problems (exit 2)
     │    └── StateError            an action that makes no sense in the current state (exit 2)
     ├── NotFoundError              a named cutover, incident or message does not exist (exit 2)
     ├── ChannelError               a channel adapter could not deliver               (exit 1)
     │    ├── TransientChannelError worth retrying, after ``retry_after`` seconds
     │    └── PermanentChannelError not worth retrying; ``remedy`` says what a person must fix
     └── NotReadyError              `comms check` found the cutover not ready         (exit 1)

Adapters raise ChannelError subclasses and never return a bool. Only the CLI and the
worker's job wrapper catch broadly, and they record what they caught.
"""

from __future__ import annotations

from dataclasses import dataclass


class CommsError(Exception):
    """Root of every error comms raises on purpose."""

    exit_code = 1


class InputError(CommsError):
    """A value a person gave (CLI argument, option, file) is invalid."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the plan, located in a file (and a line where known)."""

    file: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class PlanError(InputError):
    """The plan files do not validate; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class StateError(InputError):
    """An action refused because of the cutover's (or incident's) current state."""


class NotFoundError(CommsError):
    """A cutover, incident, delivery or message named by the user does not exist."""

    exit_code = 2


class ChannelError(CommsError):
    """A channel could not deliver a message."""


class TransientChannelError(ChannelError):
    """A failure worth retrying; ``retry_after`` is the provider's requested wait in seconds.

    ``maybe_delivered`` is set when the request left and no answer came back (a read timeout):
    the provider may have accepted it, so a blind retry could deliver it twice.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        maybe_delivered: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status
        self.maybe_delivered = maybe_delivered


def is_read_timeout(exc: BaseException) -> bool:
    """Whether a transport error is a timeout waiting for the answer (the request itself went out)."""
    reason = getattr(exc, "reason", None)
    return isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError)


class PermanentChannelError(ChannelError):
    """A failure that retrying will not fix; ``remedy`` tells a person what to change."""

    def __init__(self, message: str, *, remedy: str, status: int | None = None) -> None:
        super().__init__(f"{message} (fix: {remedy})")
        self.reason = message
        self.remedy = remedy
        self.status = status


class NotReadyError(CommsError):
    """The readiness check failed."""
