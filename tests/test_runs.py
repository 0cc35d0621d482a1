"""Resumable per-item runs (cameras.runs): restarts, torn lines, shards of other process counts, settings."""

import json

import pytest

from cameras import CamerasError, InputError
from cameras.runs import RecordStore, model_fingerprint, run_items

from .conftest import TinyNet

KEYS = [f"img{i}.jpg" for i in range(7)]


def square(i):
    return {"value": i * i, "name": KEYS[i]}


def expected():
    return [{"value": i * i, "name": k, "key": k} for i, k in enumerate(KEYS)]


def test_single_run_writes_records_in_order(tmp_path):
    recs = run_items(KEYS, square, tmp_path, "demo", {"a": 1}, progress=False)
    assert recs == expected()
    lines = (tmp_path / "demo.records.jsonl").read_text().splitlines()
    assert [json.loads(v) for v in lines] == expected()
    assert json.loads((tmp_path / "demo.config.json").read_text()) == {"a": 1}


def test_crash_then_resume_runs_only_the_rest(tmp_path):
    calls = []

    def flaky(i):
        calls.append(i)
        if i == 4:
            raise RuntimeError("boom")
        return square(i)

    with pytest.raises(RuntimeError, match="boom"):
        run_items(KEYS, flaky, tmp_path, "demo", {}, progress=False)
    assert len(RecordStore(tmp_path, "demo").load()) == 4  # finished items kept
    with open(tmp_path / "demo.records.jsonl", "a") as fh:
        fh.write('{"key": "img5.jpg", "val')  # a torn line from a kill mid-write
    calls.clear()
    assert run_items(KEYS, square_logged(calls), tmp_path, "demo", {}, progress=False) == expected()
    assert calls == [4, 5, 6]


def square_logged(calls):
    def f(i):
        calls.append(i)
        return square(i)
    return f


def test_shards_of_two_processes_completed_by_three_then_one(tmp_path):
    # a "two-process" run where rank 1 never ran: rank 0's shard only
    calls = []
    with pytest.raises(CamerasError, match=r"demo: 3 of 7 items have no record \(first: img1.jpg\).*every rank sees"):
        run_items(KEYS, square_logged(calls), tmp_path, "demo", {}, rank=0, world=2, run_id="r1", progress=False)
    assert calls == [0, 2, 4, 6]
    # three processes where rank 0 died at once; ranks 2 then 1 (no barrier, so rank 1 sees rank 2's record)
    for rank in (2, 1):
        run_items(KEYS, square_logged(calls), tmp_path, "demo", {}, rank=rank, world=3, run_id="r2", progress=False)
    assert calls[4:] == [5, 3]  # unfinished 1, 3, 5: rank 2 takes 5; then 1, 3: rank 1 takes 3
    assert len(list((tmp_path / "shards").glob("demo-*.jsonl"))) == 2
    calls.clear()
    assert run_items(KEYS, square_logged(calls), tmp_path, "demo", {}, progress=False) == expected()
    assert calls == [1] and not list((tmp_path / "shards").glob("demo-*.jsonl"))


def test_other_settings_are_refused(tmp_path):
    run_items(KEYS[:2], square, tmp_path, "demo", {"eps": 0.05}, progress=False)
    with pytest.raises(InputError, match=r"eps: 0.05 before, 0.1 now.*another --out"):
        run_items(KEYS[:2], square, tmp_path, "demo", {"eps": 0.1}, progress=False)
    with pytest.raises(InputError, match="not unique"):
        run_items(["a", "a"], square, tmp_path / "x", "demo", {}, progress=False)


def test_result_keys_return_records_of_earlier_runs_in_their_order(tmp_path):
    # a first run over items 0-2 of "a"; a second over items 0-3 of "b" whose results are wanted under both
    run_items([f"{k}\ta" for k in KEYS[:3]], square, tmp_path, "demo", {"m": {"a": 1}}, progress=False,
              extendable=("m",))
    seen = []

    def every(config):
        seen.append(config)
        return [f"{k}\t{m}" for k in KEYS[:4] for m in config["m"]]

    b_keys = [f"{k}\tb" for k in KEYS[:4]]
    recs = run_items(b_keys, square, tmp_path, "demo", {"m": {"b": 2}}, progress=False, extendable=("m",),
                     result_keys=every)
    assert seen == [{"m": {"a": 1, "b": 2}}]  # the merged settings
    want = [f"{k}\t{m}" for k in KEYS[:4] for m in "ab" if (k, m) != (KEYS[3], "a")]  # no record: left out
    assert [r["key"] for r in recs] == want
    lines = (tmp_path / "demo.records.jsonl").read_text().splitlines()
    assert [json.loads(v)["key"] for v in lines] == want  # the file is in the same order
    # every key of this run must still have a record
    more = [f"{k}\tb" for k in KEYS[:6]]  # rank 0 of two runs img4, rank 1 (never run) would run img5
    with pytest.raises(CamerasError, match=r"1 of 6 items have no record \(first: img5.jpg\tb\)"):
        run_items(more, square, tmp_path, "demo", {"m": {"b": 2}}, rank=0, world=2, run_id="r",
                  progress=False, extendable=("m",), result_keys=lambda c: more[:5])


def test_model_fingerprint_tells_weights_apart():
    a, b = TinyNet(seed=0), TinyNet(seed=1)
    assert model_fingerprint(a) == model_fingerprint(TinyNet(seed=0)) != model_fingerprint(b)
    assert model_fingerprint(a).startswith(f"{sum(p.numel() for p in a.parameters())}:")
