"""A revoked key stops working on every web process within API_KEY_CACHE_SECONDS.

Each web process remembers the keys it verified for that long instead of reading them on
every request; revoking a key is one database write that no process is told about.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from django.conf import settings

from accounts.models import ApiKey
from accounts.services import api_key_revoke
from tests.conftest import make_person
from tests.e2e.web_server import web_server

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_revoked_key_is_refused_by_every_web_process_within_the_documented_time(
    tmp_path: Path,
) -> None:
    dana = make_person("dana@example.com")
    headers = {"Authorization": f"Bearer {dana.key}"}
    documented = settings.API_KEY_CACHE_SECONDS  # the default the README states
    assert documented > 0  # otherwise this test would not exercise the cache at all
    # Two web processes (one worker each): the key is in both processes' memory.
    with (
        web_server(tmp_path / "web1.log", workers=1) as first,
        web_server(tmp_path / "web2.log", workers=1) as second,
    ):
        for url in (first, second):
            assert requests.get(f"{url}/api/v1/me", headers=headers, timeout=30).status_code == 200
        api_key_revoke(key=ApiKey.objects.get(workspace=dana.workspace))
        time.sleep(documented + 0.2)
        answers = [
            requests.get(f"{url}/api/v1/me", headers=headers, timeout=30)
            for url in (first, second)
            for _ in range(3)
        ]
    assert [answer.status_code for answer in answers] == [401] * 6
    assert {answer.json()["error"]["code"] for answer in answers} == {"invalid_api_key"}
