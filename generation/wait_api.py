"""`Prefer: wait` on POST /api/v1/generations and /api/v1/edits (config/prefer.py routes here).

The request is admitted by the usual view, as it would be without the header; then it waits
on the event loop for the job to finish (generation/notify.py: heard, never polled, and no
thread held), up to the seconds asked for and at most PREFER_WAIT_MAX_SECONDS. The answer is
the job as it is then, read once: 201 when it finished (200 for an Idempotency-Key replay),
202 while it is still queued or running, as without the header.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from config.prefer import prefer_wait_seconds
from generation.api import JobOutput
from generation.models import Job
from generation.notify import job_finished_wait
from generation.waiting import off_loop, request_thread_release

# Headers of the admission answer that the final answer carries too.
KEPT_HEADERS = (
    "RateLimit-Policy",
    "RateLimit",
    "X-RateLimit-Limit-Images",
    "X-RateLimit-Remaining-Images",
    "X-RateLimit-Reset-Images",
    "Idempotent-Replayed",
    "Atelier-Notice",
)


def job_as_shown(request: HttpRequest, job_id: str) -> dict[str, Any]:
    job = Job.objects.prefetch_related("images").get(pk=job_id)
    return dict(JobOutput(job, context={"request": request}).data)


@method_decorator(csrf_exempt, name="dispatch")  # the submit view checks a session's token
class SubmitAndWaitView(View):
    """Admit through `submit_api`, then wait for the job without holding a thread."""

    submit_api: Any = None
    http_method_names = ["post"]

    async def post(self, request: HttpRequest) -> HttpResponse:
        seconds = prefer_wait_seconds(
            request.headers.get("Prefer"), settings.PREFER_WAIT_MAX_SECONDS
        )
        admission = await sync_to_async(self.submit_api.as_view())(request)
        if admission.status_code not in (200, 202) or seconds is None:
            return admission
        job_id = str(admission.data["id"])
        if admission.data["status"] in Job.ACTIVE_STATUSES:
            await request_thread_release()
            await job_finished_wait(job_id, timeout=seconds)
        body = await off_loop(job_as_shown)(request, job_id)
        if body["status"] in Job.ACTIVE_STATUSES:
            status = 202
        else:
            status = 200 if admission.has_header("Idempotent-Replayed") else 201
        response = JsonResponse(body, status=status)
        for name in KEPT_HEADERS:
            if admission.has_header(name):
                response[name] = admission[name]
        response["Preference-Applied"] = f"wait={seconds}"
        response["Vary"] = "Prefer"
        return response
