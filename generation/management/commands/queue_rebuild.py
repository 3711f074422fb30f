from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from generation.queue import flows_rebuild, queue_index_reconcile


class Command(BaseCommand):
    help = (
        "Derive the fair queue's flows and its Redis place index from the jobs again: after "
        "jobs were changed in bulk by SQL, or Redis lost its data. Safe while the platform "
        "runs; O(n) in the queue's depth."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        flows_rebuild()
        added, removed = queue_index_reconcile()
        self.stdout.write(f"Flows derived again; place index: {added} added, {removed} removed.")
