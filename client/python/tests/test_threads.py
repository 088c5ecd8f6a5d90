"""One Client shared by 8 threads: every reply reaches the thread that asked."""

import threading

THREADS = 8
ROUNDS = 25


def test_eight_threads_share_one_client(client):
    col = client.create_collection("notes", dimension=2)
    start = threading.Barrier(THREADS)
    failures = []

    def work(t):
        try:
            start.wait()
            for r in range(ROUNDS):
                doc_id = f"t{t}-r{r}"
                col.upsert(
                    ids=[doc_id],
                    documents=[f"thread {t} round {r}"],
                    embeddings=[[t + 1.0, r + 1.0]],
                )
                got = col.get(ids=[doc_id])
                # A reply meant for another thread would carry another id or text.
                assert got["ids"] == [doc_id], got
                assert got["documents"] == [f"thread {t} round {r}"], got
                hits = col.query(query_texts=[f"thread {t}"], n_results=1000, include=["documents"])
                assert all(text.startswith("thread ") for text in hits["documents"][0])
                client.ping()
        except BaseException as e:  # collected, so the test fails with the cause
            failures.append((t, repr(e)))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert col.count() == THREADS * ROUNDS
    everything = col.get(include=["documents"])
    assert sorted(everything["ids"]) == sorted(
        f"t{t}-r{r}" for t in range(THREADS) for r in range(ROUNDS)
    )
    for doc_id, text in zip(everything["ids"], everything["documents"]):
        t, r = doc_id[1:].split("-r")
        assert text == f"thread {t} round {r}"
