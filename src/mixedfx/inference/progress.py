"""Progress bars for long loops (bootstrap, profiles, influence, bootstrap LRTs).

``progress`` arguments take three values:

* ``None`` (the default): a bar appears only when the task has already run for about two
  seconds (tqdm's ``delay``) *and* the output is interactive: stderr is a terminal or the
  code runs in a Jupyter kernel.  Quick calls, scripts piped to files and CI logs stay quiet.
* ``True``: always show a bar (from the start, to stderr).
* ``False``: never show one.

Bars come from ``tqdm.auto`` (a widget in notebooks, text in terminals).  With worker
processes the parent process owns the bar and advances it as chunks of replicates finish.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["progress_bar", "interactive", "progress_default"]

_DEFAULT: ContextVar = ContextVar("mixedfx_progress", default=None)

#: seconds a task runs before the automatic (``progress=None``) bar appears
AUTO_DELAY = 2.0


def interactive() -> bool:
    """Whether stderr is a terminal or the code runs in a Jupyter (IPython kernel) session."""
    try:
        if sys.stderr is not None and sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):
        pass
    ipy = sys.modules.get("IPython")
    if ipy is None:
        return False
    try:
        shell = ipy.get_ipython()
    except Exception:       # pragma: no cover - exotic IPython states
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def check_progress(progress) -> bool | None:
    if progress is None or isinstance(progress, bool):
        return progress
    try:
        import numpy as np
        if isinstance(progress, np.bool_):
            return bool(progress)
    except ImportError:     # pragma: no cover
        pass
    raise TypeError(f"progress must be None (automatic), True or False, got {progress!r}")


class _NoBar:
    """Stand-in with tqdm's methods when no bar is shown."""
    n = 0

    def update(self, k: int = 1) -> None:
        self.n += k

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextmanager
def progress_default(progress):
    """Within the block, ``progress=None`` arguments mean ``progress`` (lets a method pass its
    ``progress`` through functions that do not take one, e.g. ``confint``)."""
    token = _DEFAULT.set(check_progress(progress))
    try:
        yield
    finally:
        _DEFAULT.reset(token)


def progress_bar(total: int, desc: str, progress=None):
    """A tqdm bar over ``total`` steps (a do-nothing stand-in when ``progress`` says no bar).

    Use as a context manager and call ``update(k)`` as steps finish.
    """
    progress = check_progress(progress)
    if progress is None:
        progress = _DEFAULT.get()
    if progress is False or (progress is None and not interactive()):
        return _NoBar()
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, delay=AUTO_DELAY if progress is None else 0.0,
                file=sys.stderr, leave=progress is True)
