from __future__ import annotations

import io

import pytest
import requests
from PIL import Image as PILImage

from tests.conftest import follow_verification_link_live
from tests.e2e.conftest import WorkerProcess, wait_for_job

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_new_user_signs_up_and_downloads_a_png_of_the_requested_size(
    live_server: object, celery_worker: WorkerProcess
) -> None:
    base = f"{live_server.url}/api/v1"  # type: ignore[attr-defined]
    session = requests.Session()

    signup = session.post(
        f"{base}/signup",
        json={"email": "dana@example.com", "password": "a long and unusual passphrase"},
        timeout=10,
    )
    assert signup.status_code == 201, signup.text
    follow_verification_link_live("dana@example.com")  # as the mail asks
    session.headers["Authorization"] = f"Bearer {signup.json()['api_key']}"

    submitted = session.post(
        f"{base}/generations",
        json={"prompt": "a red circle on a gray background", "width": 64, "height": 96, "seed": 7},
        timeout=10,
    )
    assert submitted.status_code == 202, submitted.text
    assert submitted.json()["status"] == "queued"
    assert submitted.headers["X-RateLimit-Remaining-Images"] == "2"

    job = wait_for_job(session, f"{base}/generations/{submitted.json()['id']}")
    assert job["status"] == "succeeded", job
    assert job["seed"] == 7
    assert job["started_at"] and job["finished_at"]
    [image] = job["images"]

    download = session.get(image["url"], timeout=10)
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "image/png"
    picture = PILImage.open(io.BytesIO(download.content))
    assert picture.format == "PNG"
    assert picture.size == (64, 96)
    assert picture.text["ai-generated"] == "true"
    assert picture.text["seed"] == "7"

    anonymous = requests.get(image["url"], timeout=10)
    assert anonymous.status_code == 401
