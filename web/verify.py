"""The verification page: anyone uploads an image and reads what it carries, as
POST /api/v1/provenance/verify answers (the job only for members of its workspace)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods
from rest_framework import serializers

from generation.provenance import provenance_verify, verification_report
from generation.uploads import upload_read
from web.submit import field_errors


@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest) -> HttpResponse:
    context: dict[str, object] = {}
    status = 200
    if request.method == "POST":
        try:
            upload = request.FILES.get("image")
            if upload is None:
                raise serializers.ValidationError(_("Choose an image to verify."))
            data, image = upload_read(upload)
        except serializers.ValidationError as error:
            context["error"] = " ".join(field_errors(error).values())
            status = 400
        else:
            user = request.user if request.user.is_authenticated else None
            verification = provenance_verify(data=data, image=image, user=user)
            context["report"] = verification_report(verification)
    return render(request, "web/verify.html", context, status=status)
