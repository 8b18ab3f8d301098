"""When Python's cyclic garbage collector runs: paused while long-lived objects are built.

Start-up, loading a runbook and running one build many objects that live until the process ends
(modules, models, the loaded runbook) and little cyclic garbage, and each collection they set off
walked all of them again. The three tools here are the one place that decides how that is
avoided; a freeze made by someone else (a fork server's) is always left as it was.

- `paused()`: the collector is off while the block runs; what the block built then goes to the
  oldest generation without being walked (`settle`).
- `settle()`: move everything to the oldest generation unwalked (gc.freeze + unfreeze); a bare
  `gc.enable()` made the next young collection walk all of it (~60 ms after start-up).
- `frozen_while()`: what existed before the block is not walked while it runs (a run: a full
  collection walked every node of a big runbook again) and is given back afterwards.

Every file runbook writes is flushed and closed explicitly (runbook.atomic, the record writer),
never left to a finalizer, so keeping objects away from the collector loses no write.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


def settle() -> None:
    """What is alive moves to the oldest generation without being walked, unless someone else's
    freeze is in place (then nothing is touched)."""
    if not gc.get_freeze_count():
        gc.freeze()
        gc.unfreeze()


@contextmanager
def paused() -> Iterator[None]:
    """The collector off while the block runs (as the caller left it, if it was already off)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        settle()
        gc.enable()


@contextmanager
def frozen_while() -> Iterator[None]:
    """What exists now is not walked until the block ends; someone else's freeze stays as it is."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
