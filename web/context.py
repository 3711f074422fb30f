from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts.selectors import workspaces_for
from billing.switches import operator_switches


def workspace_nav(request: HttpRequest) -> dict[str, Any]:
    """The header: the operators' banner, the current workspace and the others to switch to."""
    context = {"operator_banner": operator_switches().banner}
    workspace = getattr(request, "workspace", None)
    if workspace is None or not request.user.is_authenticated:
        return context
    return {
        **context,
        "current_workspace": workspace,
        "my_workspaces": list(workspaces_for(request.user)),
    }
