"""The one error tree of comms.

    CommsError
     ├── InputError                 bad CLI argument or value a person typed      (exit 2)
     │    ├── PlanError             the plan files are invalid: a list of Problems (exit 2)
     │    ├── StateError            an action that makes no sense in the current state (exit 2)
     │    ├── SettingsError         a COMMS_* setting has a value comms cannot use    (exit 2)
     │    │    └── DatabaseUrlError COMMS_DATABASE_URL names no database comms can open (exit 2; also a StoreError)
     │    └── AckLinkError          an ack link that is forged, garbled or expired     (exit 2)
     ├── NotFoundError              a named cutover, incident or message does not exist (exit 2)
     ├── ChannelError               a channel adapter could not deliver               (exit 1)
     │    ├── TransientChannelError worth retrying, after ``retry_after`` seconds
     │    └── PermanentChannelError not worth retrying; ``remedy`` says what a person must fix
     ├── StoreError                 the database refused; ``database`` names it       (exit 1)
     │    ├── DatabaseLockedError   another process holds the write lock past the busy timeout
     │    ├── DatabaseReadOnlyError the file, its folder or its mount is read-only
     │    ├── DatabaseFullError     the disk (or a size limit) is full
     │    ├── DatabaseUnavailableError the database cannot be opened (folder missing or unwritable)
 │    ├── SchemaMismatchError   the database's schema is older or newer than this comms (names the remedy)
     │    └── DatabaseUrlError      (see SettingsError)
     ├── NotReadyError              `comms check` found the cutover not ready         (exit 1)
     └── SenderError                no sender can take the work now: the lease is held (--exclusive),
                                    or the worker that held it stopped before sending (exit 1)

Adapters raise ChannelError subclasses and never return a bool. Only the CLI and the
worker's job wrapper catch broadly, and they record what they caught. The store raises
StoreError subclasses (comms.store.errors translates the driver's errors into them).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AckLinkError",
    "ChannelError",
    "CommsError",
    "DatabaseFullError",
    "DatabaseLockedError",
    "DatabaseReadOnlyError",
    "DatabaseUnavailableError",
    "DatabaseUrlError",
    "InputError",
    "NotFoundError",
    "NotReadyError",
    "PermanentChannelError",
    "PlanError",
    "Problem",
    "SchemaMismatchError",
    "SenderError",
    "SettingsError",
    "StateError",
    "StoreError",
    "TransientChannelError",
    "is_read_timeout",
]


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


class SettingsError(InputError):
    """A setting from the environment (or ``.env``) is invalid; the message names the variable."""


class AckLinkError(InputError):
    """An escalation's ack link (or token) is forged, garbled or past its expiry."""


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
    """A failure that retrying will not fix; ``remedy`` tells a person what to change.

    ``channel_wide`` means no request on this channel can succeed until a person acts (a revoked or
    wrong key, a missing scope: 401/403 by default): the sender holds the channel instead of killing
    every delivery on it. Otherwise the failure is the request's own (a 400 over one address).
    """

    def __init__(
        self, message: str, *, remedy: str, status: int | None = None, channel_wide: bool | None = None
    ) -> None:
        super().__init__(f"{message} (fix: {remedy})")
        self.reason = message
        self.remedy = remedy
        self.status = status
        self.channel_wide = status in (401, 403) if channel_wide is None else channel_wide


class NotReadyError(CommsError):
    """The readiness check failed."""


class SenderError(CommsError):
    """The one-sender rule stands in the way: another process holds the lease, or its holder stopped."""


class StoreError(CommsError):
    """The database refused an operation; ``database`` is its file path or its URL without the password."""

    def __init__(self, message: str, *, database: str) -> None:
        super().__init__(message)
        self.database = database


class DatabaseLockedError(StoreError):
    """Another process held the database's write lock for longer than the busy timeout."""


class DatabaseReadOnlyError(StoreError):
    """The database cannot be written: a read-only file, folder or mount, or a read-only open."""


class DatabaseFullError(StoreError):
    """The disk holding the database, or a size limit on it, is full."""


class DatabaseUnavailableError(StoreError):
    """The database cannot be opened: its folder is missing or unwritable, or the path is not a database file."""


class SchemaMismatchError(StoreError):
    """The database's schema is not the one this comms was written for: older (run 'comms db upgrade') or newer."""


class DatabaseUrlError(SettingsError, StoreError):
    """The database URL cannot be parsed or names a driver that is not installed (exit 2, like any bad setting)."""
