"""The status client against the sandbox over HTTP, without workers."""

from __future__ import annotations

import time
from functools import partial

import pytest
import redis
import requests

from jobops.core.errors import BadBatchKey, Paused, QueryTooLong, TokenError, TransientError
from jobops.linkedin.oauth import request_token
from jobops.linkedin.status import StatusClient
from jobops.state import keys
from jobops.state.tokens import SharedTokenCache
from sandbox import SandboxState
from settings import get_settings
from tests.env import SANDBOX_URL
from tests.jobs import job, post, task_urns
from workers.runtime import build_limiter

pytestmark = pytest.mark.integration


def make_client(store: redis.Redis, secret: str = "sandbox-secret"
                ) -> tuple[StatusClient, SharedTokenCache]:
    session = requests.Session()
    fetch = partial(request_token, session, SANDBOX_URL + "/oauth/v2/accessToken",
                    "sandbox-client", secret, 5.0)
    tokens = SharedTokenCache(store, fetch, refresh_margin_seconds=60, lock_timeout_seconds=6)
    limiter = build_limiter(get_settings(), store)
    return StatusClient(session, SANDBOX_URL, tokens, limiter, 2.0), tokens


def test_expired_token_is_replaced_and_the_call_retried_once(sandbox: SandboxState,
                                                             store: redis.Redis) -> None:
    client, tokens = make_client(store)
    urns = task_urns(post([job()], "CREATE"))
    client.fetch(urns, time.time())
    sandbox.expire_tokens()
    before, refreshes = len(sandbox.status_calls()), tokens.refreshes
    page = client.fetch(urns, time.time())
    assert set(page.results) == set(urns)
    assert [c.status for c in sandbox.status_calls()[before:]] == [401, 200]
    assert tokens.refreshes == refreshes + 1


def test_token_reused_until_near_expiry(sandbox: SandboxState, store: redis.Redis) -> None:
    client, tokens = make_client(store)
    other, other_tokens = make_client(store)  # another process, sharing the same Redis
    urns = task_urns(post([job()], "CREATE"))
    for _ in range(5):
        client.fetch(urns, time.time())
        other.fetch(urns, time.time())
    assert tokens.refreshes + other_tokens.refreshes <= 1


def test_wrong_secret_names_the_settings_and_hides_the_secret(sandbox: SandboxState,
                                                              store: redis.Redis) -> None:
    store.delete("jobops:token")
    client, _ = make_client(store, secret="not-the-secret-123")
    try:
        with pytest.raises(TokenError) as caught:
            client.fetch(task_urns(post([job()], "CREATE")), time.time())
        # Refused credentials pause the fleet: asking again each round would not help.
        assert store.hget(keys.BREAKER, "reason") == b"token_refused"
    finally:
        store.delete(keys.BLOCKED_UNTIL, keys.BREAKER)
    message = str(caught.value)
    assert "LINKEDIN_CLIENT_SECRET" in message and "HTTP 401" in message
    assert "not-the-secret-123" not in message
    assert caught.value.retry_after_seconds is not None


def test_error_answers_are_classified(sandbox: SandboxState, store: redis.Redis) -> None:
    client, _ = make_client(store)
    urns = task_urns(post([job()], "CREATE"))
    sandbox.script(400, {"message": "Batch key parameter value is invalid", "status": 400})
    with pytest.raises(BadBatchKey):
        client.fetch(urns, time.time())
    sandbox.script(429, {"message": "throttled", "status": 429}, {"Retry-After": "7"})
    with pytest.raises(TransientError) as caught:
        client.fetch(urns, time.time())
    assert caught.value.retry_after_seconds == 7
    with pytest.raises(Paused):  # the whole fleet pauses, this client included
        client.fetch(urns, time.time())
    store.delete(keys.BLOCKED_UNTIL, keys.BREAKER)
    sandbox.script(503)
    with pytest.raises(TransientError):
        client.fetch(urns, time.time())
    too_many = [f"urn:li:simpleJobPostingTask:{i:036d}" for i in range(60)]
    with pytest.raises(QueryTooLong):
        client.fetch(too_many, time.time())


@pytest.mark.parametrize("fault", ["error_5xx", "timeout", "reset", "malformed", "truncated",
                                   "throttle"])
def test_every_fault_is_a_transient_error(sandbox: SandboxState, store: redis.Redis,
                                          fault: str) -> None:
    client, _ = make_client(store)
    urns = task_urns(post([job()], "CREATE"))
    sandbox.config.fault_rates = {fault: 1.0}
    try:
        with pytest.raises(TransientError):
            client.fetch(urns, time.time())
    finally:
        sandbox.config.fault_rates = {}
        store.delete(keys.BLOCKED_UNTIL, keys.BREAKER)
    assert set(client.fetch(urns, time.time()).results) == set(urns)


def test_slow_answers_are_waited_for(sandbox: SandboxState, store: redis.Redis) -> None:
    client, _ = make_client(store)
    urns = task_urns(post([job()], "CREATE"))
    sandbox.config.fault_rates = {"slow": 1.0}
    try:
        page = client.fetch(urns, time.time())
    finally:
        sandbox.config.fault_rates = {}
    assert set(page.results) == set(urns)


def test_a_token_revoked_early_is_replaced(sandbox: SandboxState, store: redis.Redis) -> None:
    client, tokens = make_client(store)
    urns = task_urns(post([job()], "CREATE"))
    sandbox.revoke(f"Bearer {tokens.token()}")
    assert set(client.fetch(urns, time.time()).results) == set(urns)
