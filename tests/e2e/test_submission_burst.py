"""A thousand concurrent submissions from one workspace, through the server as shipped.

Every request gets an answer: exactly the workspace's quota is admitted, and every other
request is told to come back (429 or 503, with Retry-After, in the API's error shape). None
is a 500 and none is left unanswered, whatever the server sheds to stay responsive.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from billing.models import Plan
from generation.models import Job
from tests.conftest import make_person, small_job
from tests.e2e.web_server import concurrent_posts, web_server

pytestmark = pytest.mark.django_db(transaction=True)

BURST = 1_000
QUOTA = 20


def test_a_thousand_concurrent_submissions_admit_exactly_the_quota_and_answer_the_rest(
    tmp_path: Path,
) -> None:
    erin = make_person("erin@example.com", plan="pro")
    # A quota well inside the burst, and no other limit in the way: no worker runs here, so
    # admission must not refuse for the wait alone, and the rate limit must not be the cap.
    Plan.objects.filter(slug="pro").update(
        daily_images=QUOTA, requests_per_minute=100_000, max_jobs_in_flight=100_000,
        max_wait_seconds=10**9,
    )  # fmt: skip
    with web_server(tmp_path / "web.log") as url:
        answers = concurrent_posts(
            url, "/api/v1/generations", small_job(),
            {"Authorization": f"Bearer {erin.key}"}, count=BURST, give_up_after=120,
        )  # fmt: skip

    statuses = [answer.status for answer in answers]
    assert None not in statuses, f"{statuses.count(None)} requests were left unanswered"
    assert statuses.count(202) == QUOTA
    assert Job.objects.filter(workspace=erin.workspace).count() == QUOTA
    refused = [answer for answer in answers if answer.status != 202]
    log = (tmp_path / "web.log").read_text()
    trace = log[log.find("Traceback") :][:4000] if "Traceback" in log else ""
    assert {answer.status for answer in refused} <= {429, 503}, (sorted(set(statuses)), trace)
    for answer in refused:
        assert answer.body is not None and set(answer.body["error"]) >= {  # type: ignore[arg-type]
            "code", "message", "type", "param",
        }  # fmt: skip
        assert int(answer.headers["retry-after"]) >= 1
