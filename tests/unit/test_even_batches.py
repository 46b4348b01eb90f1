"""How a poll's new entries are cut into task batches (``worker.tasks.even_batches``)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from worker.tasks import even_batches


def test_examples() -> None:
    assert even_batches(list(range(1, 10)), 8) == [[1, 2, 3, 4, 5], [6, 7, 8, 9]]
    assert even_batches(list(range(25)), 8) == [
        list(range(0, 7)),
        list(range(7, 13)),
        list(range(13, 19)),
        list(range(19, 25)),
    ]
    assert even_batches([5, 6, 7], 8) == [[5, 6, 7]]
    assert even_batches([5, 6, 7], 1) == [[5], [6], [7]]
    assert even_batches([], 8) == []


@given(items=st.lists(st.integers(), max_size=300), size=st.integers(min_value=1, max_value=100))
def test_batches_keep_order_and_are_as_few_and_even_as_can_be(items: list[int], size: int) -> None:
    batches = even_batches(items, size)
    assert [item for batch in batches for item in batch] == items
    assert len(batches) == -(-len(items) // size)
    assert all(1 <= len(batch) <= size for batch in batches)
    if batches:
        assert max(map(len, batches)) - min(map(len, batches)) <= 1
