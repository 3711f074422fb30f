"""The workspace's own pages: billing, API keys, the team and its invitations, and
switching or creating workspaces. Thin, as the API views are."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from rest_framework import serializers

from accounts.authentication import SESSION_WORKSPACE_KEY
from accounts.keys import api_key_create, api_key_revoke_by_member
from accounts.models import Invitation
from accounts.selectors import api_keys_for, members_of, open_invitations_for, workspaces_for
from accounts.services import invitation_accept, invitation_create, workspace_create
from billing.selectors import billing_overview, plan_for, quota_status, usage_history
from billing.stripe_client import billing_enabled
from billing.stripe_services import checkout_session_start, portal_session_start
from config.api_errors import http_status
from config.errors import DomainError
from web.mail import invitation_send
from web.workspace import is_manager, is_owner, workspace_required


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
        return HttpResponseForbidden(_("Only the workspace's owner can manage its billing."))
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
        return HttpResponseForbidden(_("Only the workspace's owner can manage its billing."))
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
    messages.success(
        request, _("Key %(prefix)s… revoked: it no longer works.") % {"prefix": key.prefix}
    )
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
        return HttpResponseForbidden(_("Only the workspace's owner or admins can invite people."))
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
        messages.error(request, _("Enter a valid email address."))
        return redirect("web:team")
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("web:team")
    invitation_send(request, invitation)
    messages.success(request, _("Invitation sent to %(email)s.") % {"email": invitation.email})
    return redirect("web:team")


@require_POST
@workspace_required
def workspace_new(request: HttpRequest) -> HttpResponse:
    name = request.POST.get("name", "").strip()[:150]
    if not name:
        messages.error(request, _("Give the team workspace a name."))
        return redirect("web:team")
    workspace = workspace_create(owner=request.user, name=name)
    request.session[SESSION_WORKSPACE_KEY] = str(workspace.pk)
    messages.success(
        request,
        _("Created %(name)s. Upgrade it to the Team plan to invite people.")
        % {"name": workspace.name},
    )
    return redirect("web:billing")


@require_POST
@workspace_required
def workspace_switch(request: HttpRequest) -> HttpResponse:
    workspace = get_object_or_404(workspaces_for(request.user), pk=request.POST.get("workspace"))
    request.session[SESSION_WORKSPACE_KEY] = str(workspace.pk)
    messages.success(request, _("Now working in %(name)s.") % {"name": workspace.name})
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
    messages.success(request, _("Welcome to %(name)s.") % {"name": membership.workspace.name})
    return redirect("web:studio")
