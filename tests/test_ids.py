"""Identifiers sort in creation order, even many in one millisecond."""

from __future__ import annotations

from server.domain.ids import new_id


def test_ids_are_prefixed_unique_and_sorted_by_creation() -> None:
    ids = [new_id("tok") for _ in range(10_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("tok_") and len(i) == 28 for i in ids)
