from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.selectors import plan_for, quota_status, usage_history


class UsageApi(APIView):
    def get(self, request: Request) -> Response:
        plan = plan_for(request.workspace)
        quota = quota_status(workspace=request.workspace, plan=plan)
        history = usage_history(workspace=request.workspace)
        return Response(
            {
                "plan": {"slug": plan.slug, "name": plan.name},
                "limit": quota.limit,
                "used": quota.used,
                "remaining": quota.remaining,
                "window_start": quota.window_start,
                "reset_at": quota.reset_at,
                "history": [
                    {"window_start": counter.window_start, "used": counter.used}
                    for counter in history
                ],
            }
        )
