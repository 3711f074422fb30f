from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts.selectors import workspaces_for


def workspace_nav(request: HttpRequest) -> dict[str, Any]:
    """The workspace switcher in the header: the current workspace and the others."""
    workspace = getattr(request, "workspace", None)
    if workspace is None or not request.user.is_authenticated:
        return {}
    return {"current_workspace": workspace, "my_workspaces": list(workspaces_for(request.user))}
