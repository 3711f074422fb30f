from __future__ import annotations

from django.urls import path

from web import language, live, verify, views, webhook_views, workspace_views

app_name = "web"

urlpatterns = [
    path("", views.home, name="home"),
    path("language/", language.language_set, name="language"),
    path("studio/", views.studio, name="studio"),
    path("edit/", views.edit, name="edit"),
    path("jobs/<uuid:job_id>/", views.job_card, name="job"),
    path("jobs/<uuid:job_id>/cancel/", views.job_cancel_view, name="job_cancel"),
    path("jobs/<uuid:job_id>/events/", live.JobCardEventsView.as_view(), name="job_events"),
    path("images/<uuid:image_id>", views.image_content, name="image"),
    path("gallery/", views.gallery, name="gallery"),
    path("verify/", verify.verify, name="verify"),
    path("gallery/<uuid:image_id>/delete/", views.image_delete_view, name="image_delete"),
    path("billing/", workspace_views.billing, name="billing"),
    path("billing/checkout/", workspace_views.billing_checkout, name="billing_checkout"),
    path("billing/portal/", workspace_views.billing_portal, name="billing_portal"),
    path("keys/", workspace_views.api_keys, name="keys"),
    path("keys/<uuid:key_id>/revoke/", workspace_views.api_key_revoke_view, name="key_revoke"),
    path("team/", workspace_views.team, name="team"),
    path("webhooks/", webhook_views.webhooks, name="webhooks"),
    path(
        "webhooks/<uuid:endpoint_id>/toggle/", webhook_views.webhook_toggle, name="webhook_toggle"
    ),
    path(
        "webhooks/<uuid:endpoint_id>/delete/", webhook_views.webhook_delete, name="webhook_delete"
    ),
    path(
        "webhooks/deliveries/<uuid:delivery_id>/redeliver/",
        webhook_views.webhook_redeliver_view,
        name="webhook_redeliver",
    ),
    path("team/invite/", workspace_views.team_invite, name="team_invite"),
    path("workspaces/new/", workspace_views.workspace_new, name="workspace_new"),
    path("workspaces/switch/", workspace_views.workspace_switch, name="workspace_switch"),
    path("invitations/<str:token>/", workspace_views.invitation, name="invitation"),
]
