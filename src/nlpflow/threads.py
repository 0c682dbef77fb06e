"""Work on two cores within one process: threads, where the work releases the GIL (pyarrow's
kernels, numpy's loops, file reads), results always in the order of the input."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any


def read_ahead(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """``items`` in order, produced by a background thread up to ``depth`` ahead: reading
    and parsing (pyarrow, which releases the GIL) overlap the caller's work on the previous
    item. An exception in ``items`` is raised here, at its place in the order; when the
    caller stops early the thread stops too (``items`` closed, nothing left running)."""
    import queue
    import threading

    done = object()
    ready: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as error:  # raised in the caller's thread
            put((None, error))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="nlpflow-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def map_ahead(
    function: Callable[[Any], Any], items: Iterable[Any], workers: int = 2
) -> Iterator[Any]:
    """``function(item)`` for each of ``items``, in order, ``workers`` threads computing at
    a time and at most ``workers + 1`` results held (memory stays that of a few items).
    Worth it when ``function`` spends its time where the GIL is released (pyarrow
    kernels, numpy loops). ``items`` is consumed in the caller's thread, in order."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    pending: deque[Any] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nlpflow-map") as pool:
        try:
            for item in items:
                pending.append(pool.submit(function, item))
                while len(pending) > workers or (pending and pending[0].done()):
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
