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
    """Call ``fn(k, lo, hi)`` for every block, on a shared pool of threads when there are
    several (the calling thread takes the first block); exceptions propagate.

    The pool's threads wait for work, and the caller for them, by spinning for up to
    :data:`SPIN_S` (a compiled loop, without the GIL) before they sleep: waking a sleeping
    thread took about 0.3 ms on the benchmark machine, 3 % of a B = 64 vector-env step on
    two threads, paid at every parallel region. A second call from another thread while the
    pool is busy (or from inside a block) runs on a plain thread pool instead."""
    if len(blocks) == 1:
        fn(0, *blocks[0])
        return
    pool = _spin_pool(len(blocks) - 1)
    if pool is not None and pool.busy.acquire(blocking=False):
        try:
            pool.run(fn, blocks)
        finally:
            pool.busy.release()
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


# -- a pool whose threads spin a while before they sleep -------------------------------------

SPIN_S = 0.002
"""How long a pool thread spins for its next block, and the caller for the pool's threads,
before sleeping (OpenMP runtimes do the same, e.g. KMP_BLOCKTIME's 200 ms): a vector env's
rendering and autoreset calls come about 1 ms apart, so the pool's threads stay awake across
them; an idle process stops spinning after 2 ms."""

_LINE = 16  # int64 flags per thread: each thread's go and done flags on their own cache lines
_spin = None  # the compiled spin loop, made on first use (numba is imported lazily)
_spin_rate = 0.0  # spin-loop iterations per second, measured once


def _compile_spin():
    """The spin loop: ``spin(flags, i, n)`` is True as soon as ``flags[i] != 0`` (an atomic
    load, which the compiler may not hoist out of the loop), False after ``n`` tries; it
    releases the GIL."""
    import ctypes

    from numba import njit, types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def load_acquire(typingctx, flags, index):
        def codegen(context, builder, signature, args):
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
            return builder.load_atomic(ptr, "acquire", 8)
        return types.int64(flags, index), codegen

    libc = ctypes.CDLL(None)
    sched_yield = libc.sched_yield
    sched_yield.restype, sched_yield.argtypes = ctypes.c_int, []

    @njit(nogil=True)
    def spin(flags, index, tries):
        for k in range(tries):
            if load_acquire(flags, index) != 0:
                return True
            if k % 1024 == 1023:  # lets a thread woken on this core run (else it waits)
                sched_yield()
        return False

    return spin


class _SpinPool:
    """``workers`` daemon threads, each with a job slot, a go flag and a done flag (an int64
    array the spin loop reads) and an Event for when the spin runs out."""

    def __init__(self, workers: int) -> None:
        global _spin, _spin_rate
        import time

        import numpy as np

        if _spin is None:
            spin = _compile_spin()
            flags = np.zeros(1, np.int64)
            spin(flags, 0, 10)
            tries = 1 << 20
            t = time.perf_counter()
            spin(flags, 0, tries)
            _spin_rate = tries / max(time.perf_counter() - t, 1e-6)
            _spin = spin
        self.tries = max(1, int(SPIN_S * _spin_rate))
        self.pid = os.getpid()
        self.workers = workers
        self.busy = threading.Lock()
        self.flags = np.zeros(2 * _LINE * workers, np.int64)
        self.jobs: list = [None] * workers
        self.errors: list = [None] * workers
        self.go = [threading.Event() for _ in range(workers)]
        self.done = [threading.Event() for _ in range(workers)]
        for w in range(workers):
            threading.Thread(target=self._loop, args=(w,), name=f"musicgym-{w}",
                             daemon=True).start()

    def _wait(self, index: int, event: threading.Event) -> None:
        # the flag is checked (spinning) before each sleep: a set seen late or early only
        # costs one more round
        while not _spin(self.flags, index, self.tries):
            event.wait()
            event.clear()
        self.flags[index] = 0

    def _loop(self, w: int) -> None:
        while True:
            self._wait(2 * _LINE * w, self.go[w])
            fn, args = self.jobs[w]
            self.jobs[w] = None
            try:
                fn(*args)
                self.errors[w] = None
            except BaseException as exc:  # noqa: BLE001 (re-raised by the caller)
                self.errors[w] = exc
            self.flags[2 * _LINE * w + _LINE] = 1
            self.done[w].set()

    def run(self, fn, blocks) -> None:
        extra = blocks[1:]
        for w, (lo, hi) in enumerate(extra):
            self.jobs[w] = (fn, (w + 1, lo, hi))
            self.flags[2 * _LINE * w] = 1
            self.go[w].set()
        try:
            fn(0, *blocks[0])
        finally:
            errors = []
            for w in range(len(extra)):
                self._wait(2 * _LINE * w + _LINE, self.done[w])
                if self.errors[w] is not None:
                    errors.append(self.errors[w])
                    self.errors[w] = None
        if errors:
            raise errors[0]


_spin_pools: _SpinPool | None = None


def _spin_pool(workers: int) -> _SpinPool | None:
    """The spinning pool with at least ``workers`` threads (a new one after a fork: threads
    do not survive it); None where numba is missing."""
    global _spin_pools
    with _lock:
        pool = _spin_pools
        if pool is None or pool.workers < workers or pool.pid != os.getpid():
            try:
                pool = _spin_pools = _SpinPool(workers)
            except ImportError:
                return None
        return pool
