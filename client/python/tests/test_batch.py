"""Splitting writes into requests (the rules of client/src/batch.rs)."""

from ctxd import _batch


def test_no_documents_no_requests():
    assert _batch.plan([]) == []


def test_document_count_limit():
    batches = _batch.plan([10] * 2500)
    assert [len(b) for b in batches] == [1000, 1000, 500]
    assert [b.start for b in batches] == [0, 1000, 2000]


def test_byte_limit_counts_a_separator_per_document():
    # 3 documents of 9 bytes (+1 separator each) fit in 30 bytes; the 4th starts a new batch.
    assert _batch.plan([9, 9, 9, 9], max_bytes=30) == [range(0, 3), range(3, 4)]


def test_oversized_document_goes_alone():
    assert _batch.plan([5, 100, 5], max_bytes=20) == [range(0, 1), range(1, 2), range(2, 3)]


def test_batches_cover_every_document_once_in_order():
    sizes = [(i * 37) % 101 + 1 for i in range(5000)]
    batches = _batch.plan(sizes, max_documents=333, max_bytes=4000)
    covered = [i for b in batches for i in b]
    assert covered == list(range(5000))
    for b in batches:
        assert len(b) <= 333
        assert len(b) == 1 or sum(sizes[i] + 1 for i in b) <= 4000
