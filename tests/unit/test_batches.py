"""BATCH callback specs: equal callbacks share a batch, the batch keys never reach Celery."""

from __future__ import annotations

from jobops.state.batches import batch_spec
from workers.callbacks import batch_task_id, describe_batch


def test_equal_callbacks_share_one_batch() -> None:
    by_name = batch_spec("p.batch", 100, 5)
    as_signature = batch_spec({"task": "p.batch", "args": [], "kwargs": {}, "options": {},
                               "subtask_type": None, "immutable": False, "chord_size": None},
                              100, 5)
    explicit = batch_spec({"task": "p.batch", "batch_size": 100, "batch_seconds": 5.0}, 7, 1)
    assert by_name == as_signature == explicit
    assert by_name.batch_id == explicit.batch_id


def test_any_difference_is_another_batch() -> None:
    base = batch_spec({"task": "p.batch", "args": [1]}, 100, 5).batch_id
    assert batch_spec({"task": "p.batch", "args": [2]}, 100, 5).batch_id != base
    assert batch_spec({"task": "p.batch", "args": [1]}, 99, 5).batch_id != base
    assert batch_spec({"task": "p.batch", "args": [1]}, 100, 6).batch_id != base
    assert batch_spec({"task": "p.batch", "args": [1], "options": {"queue": "q"}},
                      100, 5).batch_id != base


def test_batch_keys_are_stripped_from_the_signature() -> None:
    spec = batch_spec({"task": "p.batch", "batch_size": 3, "batch_seconds": 0.5,
                       "options": {"queue": "q"}}, 100, 5)
    assert (spec.size, spec.seconds) == (3, 0.5)
    assert dict(spec.signature) == {"task": "p.batch", "args": [], "kwargs": {},
                                    "options": {"queue": "q"}}


def test_flower_sees_a_short_picture_of_a_batch() -> None:
    outcomes = [{"task_urn": f"urn:li:simpleJobPostingTask:{i:08d}-aaaa"} for i in range(99)]
    outcomes.append({"task_urn": None, "element_index": 4})
    assert describe_batch(outcomes) == (
        "BATCH · 100 outcomes (00000000…, 00000001…, 00000002… +97 more)")
    assert describe_batch(outcomes[-1:]) == "BATCH · 1 outcome (element 4)"
    assert batch_task_id("abc:1") == batch_task_id("abc:1") != batch_task_id("abc:2")
