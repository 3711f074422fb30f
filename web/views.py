"""The web pages. Thin, as the API views are: each reads through a selector, writes through
a service, and scopes every query to request.workspace."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from rest_framework import serializers

from accounts.authentication import SESSION_WORKSPACE_KEY
from accounts.models import Invitation
from accounts.selectors import (
    api_keys_for,
    members_of,
    open_invitations_for,
    workspaces_for,
)
from accounts.services import (
    api_key_create,
    api_key_revoke_by_member,
    invitation_accept,
    invitation_create,
    workspace_create,
)
from billing.selectors import billing_overview, plan_for, quota_status, usage_history
from billing.stripe_client import billing_enabled
from billing.stripe_services import checkout_session_start, portal_session_start
from config.api_errors import http_status
from config.errors import DomainError
from generation.api import EditInput
from generation.model_info import model_info
from generation.models import Job
from generation.selectors import images_for, jobs_for
from generation.services import image_delete, job_cancel
from web.jobs import job_card_context
from web.mail import invitation_send
from web.submit import field_errors, form_fields, page_submit, refusal_from
from web.workspace import is_manager, is_owner, workspace_required

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
        messages.success(request, "Cancelled; its images were given back to your quota.")
    except DomainError as error:
        messages.error(request, error.message)
    return redirect("web:edit" if job.kind == Job.Kind.EDIT else "web:studio")


@require_GET
@workspace_required
def image_content(request: HttpRequest, image_id: str) -> FileResponse:
    """An image file, to members of the workspace that owns it (as /api/v1/images/<id>)."""
    image = get_object_or_404(images_for(request.workspace), pk=image_id)
    download = request.GET.get("download") == "1"
    return FileResponse(
        image.file.open("rb"),
        content_type="image/png",
        as_attachment=download,
        filename=f"atelier-{image.job_id}-{image.index}.png",
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
    messages.success(request, "Image deleted.")
    return redirect(f"{reverse('web:gallery')}?page={request.POST.get('page', '1')}")


@workspace_required
def billing(request: HttpRequest) -> HttpResponse:
    overview = billing_overview(request.workspace)
    context = {
        "overview": overview,
        "enabled": billing_enabled(),
        "owner": is_owner(request),
        "quota": quota_status(workspace=request.workspace, plan=overview.plan),
        "history": usage_history(workspace=request.workspace, days=14),
        "checkout": request.GET.get("checkout", ""),
    }
    return render(request, "web/billing.html", context)


@require_POST
@workspace_required
def billing_checkout(request: HttpRequest) -> HttpResponse:
    if not is_owner(request):
        return HttpResponseForbidden("Only the workspace's owner can manage its billing.")
    try:
        checkout = checkout_session_start(
            workspace=request.workspace,
            user=request.user,
            plan_slug=request.POST.get("plan", ""),
        )
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("web:billing")
    return redirect(checkout.url)


@require_POST
@workspace_required
def billing_portal(request: HttpRequest) -> HttpResponse:
    if not is_owner(request):
        return HttpResponseForbidden("Only the workspace's owner can manage its billing.")
    try:
        url = portal_session_start(workspace=request.workspace)
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("web:billing")
    return redirect(url)


@workspace_required
def api_keys(request: HttpRequest) -> HttpResponse:
    context: dict[str, Any] = {"new_key": None, "new_secret": None}
    if request.method == "POST":
        key, secret = api_key_create(
            workspace=request.workspace,
            user=request.user,
            name=request.POST.get("name", "").strip()[:100],
        )
        context.update(new_key=key, new_secret=secret)
    context["keys"] = api_keys_for(request.workspace)
    context["manager"] = is_manager(request)
    return render(request, "web/keys.html", context, status=201 if context["new_key"] else 200)


@require_POST
@workspace_required
def api_key_revoke_view(request: HttpRequest, key_id: str) -> HttpResponse:
    key = get_object_or_404(api_keys_for(request.workspace), pk=key_id)
    try:
        api_key_revoke_by_member(key=key, membership=request.membership)
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("web:keys")
    messages.success(request, f"Key {key.prefix}… revoked: it no longer works.")
    return redirect("web:keys")


@workspace_required
def team(request: HttpRequest) -> HttpResponse:
    plan = plan_for(request.workspace)
    context = {
        "plan": plan,
        "manager": is_manager(request),
        "can_invite": is_manager(request) and plan.allows_teams and not request.workspace.personal,
        "members": members_of(request.workspace),
        "invitations": open_invitations_for(request.workspace) if is_manager(request) else [],
        "refusal": None,
    }
    return render(request, "web/team.html", context)


@require_POST
@workspace_required
def team_invite(request: HttpRequest) -> HttpResponse:
    if not is_manager(request):
        return HttpResponseForbidden("Only the workspace's owner or admins can invite people.")
    email = request.POST.get("email", "").strip()
    try:
        serializers.EmailField().run_validation(email)
        invitation = invitation_create(
            workspace=request.workspace,
            invited_by=request.user,
            email=email,
            allows_teams=plan_for(request.workspace).allows_teams,
        )
    except serializers.ValidationError:
        messages.error(request, "Enter a valid email address.")
        return redirect("web:team")
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("web:team")
    invitation_send(request, invitation)
    messages.success(request, f"Invitation sent to {invitation.email}.")
    return redirect("web:team")


@require_POST
@workspace_required
def workspace_new(request: HttpRequest) -> HttpResponse:
    name = request.POST.get("name", "").strip()[:150]
    if not name:
        messages.error(request, "Give the team workspace a name.")
        return redirect("web:team")
    workspace = workspace_create(owner=request.user, name=name)
    request.session[SESSION_WORKSPACE_KEY] = str(workspace.pk)
    messages.success(
        request, f"Created {workspace.name}. Upgrade it to the Team plan to invite people."
    )
    return redirect("web:billing")


@require_POST
@workspace_required
def workspace_switch(request: HttpRequest) -> HttpResponse:
    workspace = get_object_or_404(workspaces_for(request.user), pk=request.POST.get("workspace"))
    request.session[SESSION_WORKSPACE_KEY] = str(workspace.pk)
    messages.success(request, f"Now working in {workspace.name}.")
    return redirect("web:studio")


@workspace_required
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    invite = get_object_or_404(Invitation.objects.select_related("workspace"), token=token)
    if request.method != "POST":
        return render(request, "web/invitation.html", {"invitation": invite})
    try:
        membership = invitation_accept(invitation=invite, user=request.user)
    except DomainError as error:
        return render(
            request,
            "web/invitation.html",
            {"invitation": invite, "error": error.message},
            status=http_status(error),
        )
    request.session[SESSION_WORKSPACE_KEY] = str(membership.workspace_id)
    messages.success(request, f"Welcome to {membership.workspace.name}.")
    return redirect("web:studio")
