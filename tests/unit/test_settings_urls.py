"""URLs in the settings: Redis passwords never shown, LinkedIn never asked over plain HTTP
to another host unless the user says so."""

from __future__ import annotations

import pytest

from jobops.core.errors import ConfigurationError
from settings import load_settings
from settings.urls import masked


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:hunter2@redis.internal:6379/0", "redis://:***@redis.internal:6379/0"),
    ("rediss://ops:hunter2@redis.internal:6380/1", "rediss://ops:***@redis.internal:6380/1"),
    ("redis://hunter2@redis.internal:6379/0", "redis://***@redis.internal:6379/0"),
    ("redis://:p@ss/w0rd@redis.internal:6379/0", "redis://:***@redis.internal:6379/0"),
    ("redis://redis.internal:6379/0?password=hunter2&db=2",
     "redis://redis.internal:6379/0?password=***&db=2"),
    ("sentinel://:hunter2@s1:26379;sentinel://:hunter2@s2:26379",
     "sentinel://:***@s1:26379;sentinel://:***@s2:26379"),
    ("redis://localhost:6379/0", "redis://localhost:6379/0"),
])
def test_masked_hides_every_password(url: str, shown: str) -> None:
    assert masked(url) == shown


def test_settings_repr_masks_passwords_in_every_url() -> None:
    settings = load_settings(REDIS_URL="redis://:hunter2@redis.internal:6379/0",
                             CELERY_BROKER_URL="rediss://ops:hunter3@broker.internal:6380/1",
                             LINKEDIN_API_URL="https://proxy:hunter4@api.example.com")
    for text in (repr(settings), str(settings)):
        assert "hunter" not in text
        assert "redis://:***@redis.internal:6379/0" in text
        assert "rediss://ops:***@broker.internal:6380/1" in text
    assert settings.redis_url == "redis://:hunter2@redis.internal:6379/0"  # still usable


@pytest.mark.parametrize("env", ["LINKEDIN_API_URL", "LINKEDIN_TOKEN_URL"])
def test_plain_http_to_another_host_is_refused(env: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(**{env: "http://user:hunter2@sandbox:8099/oauth"})
    message = str(caught.value)
    assert env in message and "JOBOPS_ALLOW_PLAIN_HTTP" in message and "https://" in message
    assert "hunter2" not in message


@pytest.mark.parametrize("url", ["http://127.0.0.1:8099", "http://localhost:8099",
                                 "http://[::1]:8099", "https://api.linkedin.com"])
def test_plain_http_to_this_machine_or_https_is_fine(url: str) -> None:
    assert load_settings(LINKEDIN_API_URL=url).linkedin_api_url == url


def test_plain_http_elsewhere_when_the_user_allows_it() -> None:
    settings = load_settings(LINKEDIN_API_URL="http://sandbox:8099",
                             LINKEDIN_TOKEN_URL="http://sandbox:8099/oauth/v2/accessToken",
                             JOBOPS_ALLOW_PLAIN_HTTP="1")
    assert settings.linkedin_api_url == "http://sandbox:8099"
