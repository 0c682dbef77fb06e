from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from nlpflow.threads import map_ahead, read_ahead


def _numbers(n: int, closed: list[bool], fail_at: int | None = None) -> Iterator[int]:
    try:
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"bad item {i}")
            yield i
    finally:
        closed.append(True)


def test_read_ahead_keeps_order_and_raises_where_the_error_was() -> None:
    closed: list[bool] = []
    assert list(read_ahead(_numbers(50, closed), depth=2)) == list(range(50))
    assert closed == [True]
    got = []
    with pytest.raises(ValueError) as caught:
        for item in read_ahead(_numbers(10, closed, fail_at=6)):
            got.append(item)
    assert "bad item 6" in str(caught.value)
    assert got == [0, 1, 2, 3, 4, 5]


def test_read_ahead_stops_its_thread_when_the_caller_stops_early() -> None:
    closed: list[bool] = []
    before = threading.active_count()
    items = read_ahead(_numbers(1000, closed), depth=2)
    assert next(items) == 0
    items.close()  # the caller breaks out of its loop
    assert closed == [True]  # the source was closed, not left half-read
    assert threading.active_count() == before


def test_map_ahead_keeps_order_and_holds_few_results() -> None:
    taken: list[int] = []

    def items() -> Iterator[int]:
        for i in range(40):
            taken.append(i)
            yield i

    def slow_on_even(i: int) -> int:
        threading.Event().wait(0.002 if i % 2 == 0 else 0)  # later items finish first
        return i * i

    out = []
    for value in map_ahead(slow_on_even, items(), workers=2):
        out.append(value)
        assert len(taken) - len(out) <= 3  # at most workers + 1 items in flight
    assert out == [i * i for i in range(40)]


def test_map_ahead_raises_the_first_error_in_order() -> None:
    def fail_on(i: int) -> int:
        if i in (3, 5):
            raise ValueError(f"item {i}")
        return i

    got = []
    with pytest.raises(ValueError) as caught:
        for value in map_ahead(fail_on, range(10)):
            got.append(value)
    assert str(caught.value) == "item 3"
    assert got == [0, 1, 2]
