"""A remembered key is handed to each request as its own copy: what one request changes on
its key, workspace or owner never reaches the process's memory or another request."""

from __future__ import annotations

import pytest

from accounts.key_cache import VerifiedKeys
from accounts.models import ApiKey
from tests.conftest import Person

pytestmark = pytest.mark.django_db


def test_each_request_gets_its_own_key_workspace_and_owner(alice: Person) -> None:
    remembered = ApiKey.objects.select_related("workspace", "created_by").get(
        workspace=alice.workspace
    )
    first = VerifiedKeys.copy_for_request(remembered)
    second = VerifiedKeys.copy_for_request(remembered)
    for copy in (first, second):
        assert copy == remembered and copy is not remembered
        assert copy.workspace == alice.workspace and copy.workspace is not remembered.workspace
        assert copy.created_by == alice.user and copy.created_by is not remembered.created_by
        assert copy.workspace_id == remembered.workspace_id
        assert copy._state is not remembered._state and not copy._state.adding
    first.name = "changed by a request"
    first.workspace.name = "renamed by a request"
    first.created_by.name = "Mallory"
    first.workspace.suspended_at = first.created_at
    assert remembered.name != "changed by a request"
    assert remembered.workspace.name == alice.workspace.name != "renamed by a request"
    assert remembered.created_by.name != "Mallory" and second.created_by.name != "Mallory"
    assert not remembered.workspace.is_suspended and not second.workspace.is_suspended
    assert first.workspace is not second.workspace
    # A copy still saves as the row it is (its state says it came from the database).
    first.save(update_fields=["name"])
    assert ApiKey.objects.get(pk=remembered.pk).name == "changed by a request"
