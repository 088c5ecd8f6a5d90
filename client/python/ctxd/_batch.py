"""Splitting one write of any size into ``upsert`` requests the daemon accepts.

The daemon takes at most ``MAX_BATCH_DOCUMENTS`` documents per ``upsert`` (``proto/src/limits.rs``)
and reads lines of at most ``--max-frame`` bytes (32 MiB by default). Like the Rust client
(``client/src/batch.rs``), runs of documents are cut in order so that each request holds at most
1000 documents and at most ``UPSERT_BATCH_BYTES`` of encoded documents, half the default frame,
leaving the other half as headroom for the envelope. Unlike the Rust client, the sizes here are
exact: every document is encoded once anyway, and its encoding is what gets sent.
"""

from __future__ import annotations

from typing import Iterable, List

#: The most documents one ``upsert`` may carry (``MAX_BATCH_DOCUMENTS`` in limits.rs).
MAX_BATCH_DOCUMENTS = 1000

#: The most encoded JSON per request when the daemon computes the documents' vectors: about 85
#: abstracts of SciFact (all-MiniLM-L6-v2 embeds about 20 a second on two cores, so such a
#: request answers in a few seconds, well within the client's timeout even with other clients
#: sharing the model), or a thousand short texts, which the daemon embeds in one or two packed
#: passes. Bounding bytes rather than documents is what lets short texts go in large batches:
#: the model's time follows the tokens, which follow the bytes.
EMBED_BATCH_BYTES = 128 * 1024

#: The most encoded JSON the documents of one request may add up to (as in batch.rs).
UPSERT_BATCH_BYTES = 16 * 1024 * 1024


def plan(
    sizes: Iterable[int],
    max_documents: int = MAX_BATCH_DOCUMENTS,
    max_bytes: int = UPSERT_BATCH_BYTES,
) -> List[range]:
    """Index ranges of consecutive documents, one per request, covering every document once.

    Each range holds at most ``max_documents`` documents (at least one) and, unless it is a
    single oversized document (sent alone; the daemon judges it), at most ``max_bytes`` of
    encoded JSON, counting one separator byte per document. No documents, no ranges.
    """
    # A limit of 0 would never make progress; 1 is the smallest meaningful one.
    max_documents = max(1, max_documents)
    batches: List[range] = []
    start = 0
    used = 0
    end = 0
    for index, size in enumerate(sizes):
        added = size + 1
        full = index - start == max_documents or used + added > max_bytes
        if index > start and full:
            batches.append(range(start, index))
            start = index
            used = 0
        used += added
        end = index + 1
    if start < end:
        batches.append(range(start, end))
    return batches
