"""Compiled templates kept on disk between runs, so a command does not recompile every template.

Jinja's ``FileSystemBytecodeCache`` names an entry after the template's name and file path and keeps the
SHA-1 of the source beside the code; an entry whose source differs is ignored and rewritten, so an
edited template renders its new text on the next run. The same file compiles differently in each of
the renderer's environments (HTML autoescape, plain text, Slack finalize), so every environment gets
its own file-name prefix: a digest of what shapes the compiled code. That is the options, the Jinja
version, and every filter and test with the argument it is passed (a filter that starts taking the
context, ``@pass_context``, is called with one more argument by code compiled after the change, so code
compiled before it must not be reused by a newer comms).

The cache only saves time: a directory that cannot be created, written or trusted (another user may
write to it), or an entry that cannot be read or written, costs a compile and a debug log line, never
a failed command. The directory is ``COMMS_CACHE_DIR`` (see ``comms.settings``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

import jinja2
from jinja2 import Environment, FileSystemBytecodeCache
from jinja2.bccache import Bucket

from comms.settings import Settings

__all__ = ["template_bytecode_cache"]

log = logging.getLogger(__name__)


class _TolerantBytecodeCache(FileSystemBytecodeCache):
    """A file-system bytecode cache whose read and write failures only mean a compile."""

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except (OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
            log.debug("template cache entry %s unreadable (%s); compiling", bucket.key, exc)
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError as exc:
            log.debug("template cache entry %s not written (%s)", bucket.key, exc)


def template_bytecode_cache(environment: Environment) -> FileSystemBytecodeCache | None:
    """A bytecode cache for ``environment`` in the settings' cache directory, or None when it is unusable."""
    directory = Settings().cache_dir
    if directory is None or not _usable_cache_dir(directory.expanduser()):
        return None
    return _TolerantBytecodeCache(str(directory.expanduser()), f"{_options_digest(environment)}-%s.cache")


@functools.lru_cache(maxsize=8)
def _usable_cache_dir(directory: Path) -> bool:
    """Whether ``directory`` exists (it is created), is ours, others cannot write it, and we can write it."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = directory.stat()
        if hasattr(os, "getuid") and mode.st_uid != os.getuid():
            log.debug("no template cache: %s belongs to another user", directory)
            return False
        if mode.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            log.debug("no template cache: others may write to %s", directory)
            return False
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        log.debug("no template cache: %s is not a writable directory (%s)", directory, exc)
        return False
    return True


def _options_digest(environment: Environment) -> str:
    """A short digest of the environment options, filters and tests the compiled code depends on."""
    finalize = environment.finalize
    options = (
        jinja2.__version__,
        _callables(environment.filters),
        _callables(environment.tests),
        environment.autoescape if isinstance(environment.autoescape, bool) else _qualified(environment.autoescape),
        _qualified(finalize) if finalize is not None else None,
        environment.trim_blocks,
        environment.lstrip_blocks,
        environment.keep_trailing_newline,
        environment.newline_sequence,
        environment.block_start_string,
        environment.block_end_string,
        environment.variable_start_string,
        environment.variable_end_string,
        environment.comment_start_string,
        environment.comment_end_string,
        environment.line_statement_prefix,
        environment.line_comment_prefix,
        environment.optimized,
        environment.is_async,
        tuple(sorted(environment.extensions)),
    )
    return hashlib.sha1(repr(options).encode(), usedforsecurity=False).hexdigest()[:12]


def _callables(functions: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    """Each filter's or test's name and the argument Jinja passes it first (context, environment, none)."""
    return tuple(sorted((name, str(getattr(function, "jinja_pass_arg", None))) for name, function in functions.items()))


def _qualified(function: object) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"
