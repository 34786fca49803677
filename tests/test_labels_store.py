"""PendingPredictions on its own: the same answers as an ordered map of one tuple per row, in
memory bounded by about twice max_pending, and checkpoints in the format both read."""

from __future__ import annotations

import random
from collections import OrderedDict
from types import SimpleNamespace

import msgspec
import numpy as np
import pytest

from service.core.labels import PendingPredictions


class RowByRow:
    """The store's meaning with a tuple per row: an ordered map id -> row; a batch is added,
    then the oldest beyond max_pending are evicted (a re-sent id keeps its place)."""

    def __init__(self, max_pending: int, ttl: float):
        self.max_pending, self.ttl = max_pending, ttl
        self.pending: OrderedDict[str, tuple] = OrderedDict()
        self.matched: OrderedDict[str, None] = OrderedDict()
        self.evicted = 0

    def add(self, ids, timestamps, versions, predictions, scores, segments=None):
        columns = [list(timestamps), versions, predictions, list(scores)] + ([segments] if segments else [])
        self.pending.update(zip(ids, zip(*columns, strict=True), strict=True))
        while len(self.pending) > self.max_pending:
            self.pending.popitem(last=False)
            self.evicted += 1

    def expire(self, now):
        while self.pending and next(iter(self.pending.values()))[0] < now - self.ttl:
            self.pending.popitem(last=False)
            self.evicted += 1

    def join(self, labels):
        out = {"matched": [], "unmatched": 0, "duplicate": 0}
        for label in labels:
            row = self.pending.pop(label.id, None)
            if row is None:
                out["duplicate" if label.id in self.matched else "unmatched"] += 1
                continue
            self.matched[label.id] = None
            segment = tuple(row[4]) if len(row) > 4 and row[4] is not None else None
            out["matched"].append((row[1], label.label, row[2], row[3], max(0.0, label.timestamp - row[0]), segment))
        while len(self.matched) > self.max_pending:
            self.matched.popitem(last=False)
        return out


def plain_answers(out: dict) -> dict:
    return {**out, "matched": plain(out["matched"])}


def answers(joined) -> dict:
    matched = zip(joined.versions, joined.y_true, joined.y_pred, joined.scores, joined.delays, joined.segments,
                  strict=True)
    return {"matched": list(matched), "unmatched": joined.unmatched, "duplicate": joined.duplicate}


def plain(values):
    """Lists as tuples (a restored segment is a list), NaN as None, numpy floats as floats."""
    if isinstance(values, (list, tuple)):
        return tuple(plain(v) for v in values)
    if isinstance(values, float):
        return None if values != values else float(values)
    return values


def labels(ids, at):
    return [SimpleNamespace(id=i, label=sum(map(ord, i)) % 2, timestamp=at) for i in ids]


@pytest.mark.parametrize("seed", range(9))
def test_random_adds_joins_expiries_and_restores_answer_as_row_by_row(seed):
    rng = random.Random(seed)
    segmented = ("never", "always", "some batches")[seed % 3]  # a store can hold rows of both widths
    store, model = PendingPredictions(300, 50.0), RowByRow(300, 50.0)
    clock, made = 0.0, 0
    for _ in range(120):
        action = rng.random()
        if action < 0.55:  # predictions, some re-sending ids already seen (also within the batch)
            size = rng.choice([1, 7, 60, 250, 700])
            ids = [f"p{made + i}" if rng.random() > 0.1 else f"p{rng.randrange(made + size)}" for i in range(size)]
            made += size
            clock += rng.random() * 5
            stamps = np.array([clock + rng.random() for _ in ids])
            versions = [rng.choice("ab") for _ in ids]
            predictions = [rng.randrange(2) for _ in ids]
            scores = np.array([rng.random() if rng.random() > 0.2 else np.nan for _ in ids])
            segments = [rng.choice([None, ("x",), ("y", "z")]) for _ in ids] \
                if segmented == "always" or (segmented == "some batches" and rng.random() < 0.5) else None
            store.add(ids, stamps, versions, predictions, scores, segments)
            model.add(ids, stamps, versions, predictions, scores, segments)
        elif action < 0.9:  # labels, for recent, old and unknown ids
            ids = [f"p{rng.randrange(made + 20)}" for _ in range(rng.choice([1, 30, 400]))]
            now = clock + rng.random() * 20
            store.expire(now)
            model.expire(now)
            assert plain_answers(answers(store.join(labels(ids, now)))) == plain_answers(model.join(labels(ids, now)))
        else:  # a checkpoint, restored into a fresh store
            data = store.to_bytes()
            store = PendingPredictions(300, 50.0)
            store.load_bytes(data)
            store.evicted = model.evicted
        assert len(store) == len(model.pending) and store.evicted == model.evicted
        assert plain(store.items()) == plain(list(model.pending.items()))
        assert store.rows_held <= 2 * 300 + 2 * 700


def test_rows_joined_out_of_every_batch_are_released_not_kept():
    """A label for all but one prediction of each batch: the one left keeps its batch's
    other rows only until they are as many as the waiting ones."""
    store = PendingPredictions(100_000, 1e9)
    for batch in range(200):
        ids = [f"p{batch * 1000 + i}" for i in range(1000)]
        store.add(ids, np.full(1000, float(batch)), ["v"] * 1000, [1] * 1000, np.full(1000, 0.5))
        store.join(labels(ids[1:], batch + 1.0))
    assert len(store) == 200
    assert len(store) <= store.rows_held <= 2 * 200 + 2 * 1000  # every row held counted, the joined released
    assert [key for key, _ in store.items()] == [f"p{b * 1000}" for b in range(200)]
    assert store.items()[-1][1] == (199.0, "v", 1, 0.5)


def test_a_checkpoint_reads_and_writes_the_id_and_row_lists_of_earlier_versions():
    old = msgspec.json.encode({"ids": ["a", "b", "c"],
                               "rows": [[1.0, "1", 0, 0.25], [2.0, "1", 1, None, ["s"]], [3.0, "2", "x", 0.5, None]],
                               "matched": ["z"]})
    store = PendingPredictions(10, 100.0)
    store.load_bytes(old)
    assert len(store) == 3
    joined = store.join(labels(["b", "z", "a"], 4.0))
    assert answers(joined)["matched"][0][:3] == ("1", ord("b") % 2, 1) and joined.segments == [("s",), None]
    assert (joined.unmatched, joined.duplicate) == (0, 1)
    written = msgspec.json.decode(store.to_bytes())
    assert written == {"ids": ["c"], "rows": [[3.0, "2", "x", 0.5, None]], "matched": ["z", "b", "a"]}
    plain = PendingPredictions(10, 100.0)
    plain.add(["a"], np.array([1.0]), ["1"], [0], np.array([0.25]))
    assert plain.to_bytes() == b'{"ids":["a"],"rows":[[1.0,"1",0,0.25]],"matched":[]}'
