"""Errors a user can act on, told in one line.

The library raises its own error types, each naming the file, key or value at
fault (DataError, CheckpointError, TransferError, ResultsError, SweepError, ...:
all subclasses of `UserError`). A
file-system failure deep inside a library (orbax's threads, tensorstore) often
reaches us wrapped in other exceptions; `os_cause` digs out the OSError behind
it, and `explain` turns any of these into the line a launcher prints.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import os
import re
import sys
import threading

ADVICE = {
    errno.ENOSPC: "free space there or choose another folder, then rerun: the run resumes "
                  "from its last intact checkpoint",
    errno.EDQUOT: "free space (quota) there or choose another folder, then rerun",
    errno.EACCES: "check the folder's permissions, or choose another folder",
    errno.EPERM: "check the folder's permissions, or choose another folder",
    errno.EROFS: "the file system is read-only: choose a writable folder (--workdir, "
                 "--out, $XFER_JAX_CACHE)",
    errno.EEXIST: "a file stands where a folder is needed: move it, or choose another path "
                  "(--workdir, --out, $XFER_JAX_CACHE)",
    errno.ENOTDIR: "a file stands where a folder of that path is needed: move it, or choose "
                   "another path (--workdir, --out, $XFER_JAX_CACHE)",
    errno.EFBIG: "the file reached the process's file-size limit (ulimit -f): raise it, then "
                 "rerun: the run resumes",
}


class UserError(Exception):
  """An error whose message tells the user what is wrong and what to do."""


def _chain(exc: BaseException):
  """exc, its causes and contexts, and the members of exception groups, once each."""
  seen, todo = set(), [exc]
  while todo:
    e = todo.pop(0)
    if e is None or id(e) in seen:
      continue
    seen.add(id(e))
    yield e
    todo += [e.__cause__, e.__context__, *getattr(e, "exceptions", ())]


def os_cause(exc: BaseException) -> OSError | None:
  """The first OSError with an errno in exc's chain, or one that a wrapped message
  names ("[Errno 28] ..."), as an OSError."""
  for e in _chain(exc):
    if isinstance(e, OSError) and e.errno in ADVICE:
      return e
  for e in _chain(exc):
    for code in ADVICE:
      text = str(e)
      if f"[Errno {code}]" in text or f"os_error_code='{code}'" in text or _strerror(code) in text:
        path = getattr(e, "filename", None) or next(iter(re.findall(r'"(/[^"]+)"', text)), None)
        return OSError(code, _strerror(code), path)
  return None


class _Collect(logging.Filter):
  def __init__(self):
    super().__init__()
    self.records = []

  def filter(self, record):
    if record.levelno >= logging.ERROR:
      self.records.append(record)
      return False
    return True


@contextlib.contextmanager
def quiet_background_failures():
  """Holds back what a library's worker threads print when an operation fails in
  them (error logs with tracebacks, exceptions in threads and callbacks): the
  operation's own exception, raised in this thread, carries the cause, and the
  launcher tells it in one line. Kept in the exception's notes for --debug."""
  collect = _Collect()
  handlers = [h for h in logging.getLogger().handlers] + logging.getLogger("absl").handlers
  hooks = sys.unraisablehook, threading.excepthook, sys.excepthook
  held = []
  sys.unraisablehook = lambda u: held.append(f"{u.exc_type.__name__}: {u.exc_value}")
  threading.excepthook = lambda a: held.append(f"{a.exc_type.__name__}: {a.exc_value}")
  sys.excepthook = lambda t, v, tb: held.append(f"{t.__name__}: {v}")
  for h in handlers:
    h.addFilter(collect)
  try:
    yield
  except BaseException as e:
    gc.collect()  # a failed operation's orphaned tasks report now, while held back
    for line in held + [r.getMessage() for r in collect.records]:
      e.add_note(line[:500])
    raise
  finally:
    for h in handlers:
      h.removeFilter(collect)
    sys.unraisablehook, threading.excepthook, sys.excepthook = hooks


def _strerror(code: int) -> str:
  return os.strerror(code)


def describe_os_error(e: OSError) -> str:
  where = f": {e.filename}" if e.filename else ""
  return f"{e.strerror or _strerror(e.errno)}{where}; {ADVICE.get(e.errno, 'see the path')}"


def explain(exc: BaseException) -> str | None:
  """The one line to print for exc, or None for an unexpected error (a bug: its
  traceback is the useful report)."""
  if isinstance(exc, (UserError, FloatingPointError)):
    return f"{type(exc).__name__}: {exc}"  # names its file, key or value itself
  cause = os_cause(exc)
  if cause is not None:
    return describe_os_error(cause)
  return None
