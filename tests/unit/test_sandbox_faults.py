"""Forced faults: the chaos run relies on every kind firing, whatever the dice say."""

from __future__ import annotations

import pytest

from sandbox import SandboxConfig, SandboxState
from sandbox.state import FAULTS


def test_forced_faults_come_first_one_per_call_and_are_counted() -> None:
    state = SandboxState(SandboxConfig(fault_rates={}))
    state.force_faults(["revoke", "throttle", "revoke"])

    picked = [state.pick_fault() for _ in range(4)]

    assert picked == ["revoke", "throttle", "revoke", None]
    assert state.faults == {"revoke": 2, "throttle": 1}


def test_random_faults_resume_after_the_forced_ones() -> None:
    state = SandboxState(SandboxConfig(fault_rates={"reset": 1.0}))
    state.force_faults(["truncated"])

    assert [state.pick_fault() for _ in range(3)] == ["truncated", "reset", "reset"]
    assert state.faults == {"truncated": 1, "reset": 2}


def test_an_unknown_kind_is_refused_naming_the_known_ones() -> None:
    state = SandboxState()
    with pytest.raises(ValueError, match="error_5xx"):
        state.force_faults(["teapot"])
    assert [state.pick_fault() for _ in range(len(FAULTS))] == [None] * len(FAULTS)
