from __future__ import annotations

from django.contrib import admin

from generation.models import Image, Job


class ImageInline(admin.TabularInline):
    model = Image
    extra = 0
    readonly_fields = ["index", "file", "width", "height", "seed", "created_at"]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "workspace", "kind", "status", "lane", "num_images", "created_at"]
    list_filter = ["status", "lane", "kind"]
    search_fields = ["id", "workspace__name", "prompt"]
    readonly_fields = ["created_at", "started_at", "finished_at", "heartbeat_at", "worker"]
    inlines = [ImageInline]
