"""The web pages. Thin, as the API views are: each reads through a selector, writes through
a service, and scopes every query to request.workspace."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from rest_framework import serializers

from billing.selectors import plan_for, quota_status
from config.api_errors import http_status
from config.errors import DomainError
from generation.api import EditInput
from generation.images import mime_type_of_name
from generation.model_info import model_info
from generation.models import Job
from generation.selectors import image_to_serve, images_for, jobs_for
from generation.services import image_delete, job_cancel
from web.jobs import job_card_context
from web.submit import field_errors, form_fields, page_submit, refusal_from
from web.workspace import workspace_required

GENERATION_FIELDS = ["prompt", "negative_prompt", "width", "height", "steps", "seed", "num_images"]
EDIT_FIELDS = [*GENERATION_FIELDS, "strength"]
RECENT_JOBS = 8
GALLERY_PAGE_SIZE = 24


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("web:studio")
    return render(request, "web/home.html")


def _studio_context(request: HttpRequest, *, edit: bool) -> dict[str, Any]:
    plan = plan_for(request.workspace)
    model = model_info(settings.GENERATION_MODEL)
    kind = Job.Kind.EDIT if edit else Job.Kind.TEXT_TO_IMAGE
    defaults: dict[str, Any] = {
        "width": min(model.native_size, plan.max_width),
        "height": min(model.native_size, plan.max_height),
        "steps": min(model.recommended_steps, plan.max_steps),
        "num_images": 1,
        "strength": 0.6,
        "prompt": model.example_prompt,
    }
    if edit:  # blank: the photo's own shape, scaled to the plan
        defaults.update(width="", height="")
    return {
        "plan": plan,
        "quota": quota_status(workspace=request.workspace, plan=plan),
        "model": model,
        "defaults": defaults,
        "jobs": [
            job_card_context(job)
            for job in jobs_for(request.workspace).filter(kind=kind)[:RECENT_JOBS]
        ],
        "values": {},
        "errors": {},
        "refusal": None,
    }


def _submit_page(request: HttpRequest, *, edit: bool) -> HttpResponse:
    template = "web/edit.html" if edit else "web/studio.html"
    target = "web:edit" if edit else "web:studio"
    context = _studio_context(request, edit=edit)
    if request.method != "POST":
        return render(request, template, context)
    data = form_fields(request, EDIT_FIELDS if edit else GENERATION_FIELDS)
    plan = context["plan"]
    try:
        if edit:
            page_submit(request, data, plan=plan, kind=Job.Kind.EDIT, serializer_class=EditInput)
        else:
            page_submit(request, data, plan=plan)
    except serializers.ValidationError as error:
        context.update(values=data, errors=field_errors(error))
        return render(request, template, context, status=400)
    except DomainError as error:
        context.update(values=data, refusal=refusal_from(error))
        return render(request, template, context, status=http_status(error))
    return redirect(target)


@workspace_required
def studio(request: HttpRequest) -> HttpResponse:
    return _submit_page(request, edit=False)


@workspace_required
def edit(request: HttpRequest) -> HttpResponse:
    return _submit_page(request, edit=True)


@require_GET
@workspace_required
def job_card(request: HttpRequest, job_id: str) -> HttpResponse:
    """The card of one job, polled by htmx while the job is queued or running."""
    job = get_object_or_404(jobs_for(request.workspace), pk=job_id)
    context = {"card": job_card_context(job)}
    if job.is_finished:  # the meter may have changed (a refund): update it alongside
        context["quota"] = quota_status(workspace=request.workspace)
    return render(request, "web/_job.html", context)


@require_POST
@workspace_required
def job_cancel_view(request: HttpRequest, job_id: str) -> HttpResponse:
    job = get_object_or_404(jobs_for(request.workspace), pk=job_id)
    try:
        job_cancel(job=job)
        messages.success(request, _("Cancelled; its images were given back to your quota."))
    except DomainError as error:
        messages.error(request, error.message)
    return redirect("web:edit" if job.kind == Job.Kind.EDIT else "web:studio")


@require_GET
@workspace_required
def image_content(request: HttpRequest, image_id: str) -> FileResponse:
    """An image file, to members of the workspace that owns it (as /api/v1/images/<id>)."""
    image = image_to_serve(image_id, request.workspace)
    if image is None:
        raise Http404
    download = request.GET.get("download") == "1"
    extension = image.file.name.rsplit(".", 1)[-1]
    return FileResponse(
        image.file.open("rb"),
        content_type=mime_type_of_name(image.file.name),
        as_attachment=download,
        filename=f"atelier-{image.job_id}-{image.index}.{extension}",
    )


@require_GET
@workspace_required
def gallery(request: HttpRequest) -> HttpResponse:
    images = images_for(request.workspace).select_related("job").order_by("-created_at", "index")
    page = Paginator(images, GALLERY_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "web/gallery.html", {"page": page})


@require_POST
@workspace_required
def image_delete_view(request: HttpRequest, image_id: str) -> HttpResponse:
    image_delete(image=get_object_or_404(images_for(request.workspace), pk=image_id))
    messages.success(request, _("Image deleted."))
    return redirect(f"{reverse('web:gallery')}?page={request.POST.get('page', '1')}")
