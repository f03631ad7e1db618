"""How many threads the engine and the rewards use for one batch, and a pool to use them.

A batch's rows are independent: the NumPy backend renders contiguous blocks of rows on
separate threads (its compiled kernels release the GIL), and the MR-STFT transforms and
reduces its chunks of rows on separate threads. Every row is computed by the same code in the
same order whatever the number of threads, so results are bit-identical to one thread
(tests/synth/test_threads.py).

The number of threads is ``threads=`` where an API takes it, else the environment variable
``MUSICGYM_NUM_THREADS``, else 1: training runs several envs and workers side by side, and a
default of every core would oversubscribe a small machine (set it to the number of cores for
a single process that renders large batches).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from musicgym.errors import ConfigError

THREADS_ENV = "MUSICGYM_NUM_THREADS"
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_lock = threading.Lock()


def num_threads(threads: int | None = None) -> int:
    """The number of threads to use: ``threads`` if given, else ``MUSICGYM_NUM_THREADS``, else 1.

    Raises
    ------
    ConfigError
        ``threads`` or the environment variable is not a positive integer.
    """
    source = "threads"
    if threads is None:
        raw = os.environ.get(THREADS_ENV, "").strip()
        if not raw:
            return 1
        source = THREADS_ENV
        try:
            threads = int(raw)
        except ValueError:
            threads = 0
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"{source} must be a positive integer (threads per batch), got "
                          f"{os.environ.get(THREADS_ENV) if source != 'threads' else threads!r}")
    return threads


def row_blocks(rows: int, threads: int, min_rows: int = 1) -> list[tuple[int, int]]:
    """Contiguous ``(lo, hi)`` blocks of ``rows`` rows, at most ``threads`` of them and each of
    at least ``min_rows`` rows (one block when there is not enough work to share)."""
    n = max(1, min(threads, rows // max(1, min_rows)))
    bounds = [rows * k // n for k in range(n + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(n)]


def run_blocks(fn: Callable[[int, int, int], None], blocks: list[tuple[int, int]]) -> None:
    """Call ``fn(k, lo, hi)`` for every block, on a shared thread pool when there are several
    (the calling thread takes the first block); exceptions propagate."""
    if len(blocks) == 1:
        fn(0, *blocks[0])
        return
    futures = [_executor(len(blocks) - 1).submit(fn, k, lo, hi)
               for k, (lo, hi) in enumerate(blocks[1:], start=1)]
    try:
        fn(0, *blocks[0])
    finally:
        for f in futures:
            f.result()


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_size = ThreadPoolExecutor(workers, "musicgym"), workers
        return _pool
