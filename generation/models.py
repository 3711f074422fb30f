from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from billing.models import Lane, ModerationLevel


class Job(models.Model):
    """One request for images. The row is the truth; queue messages carry only its id."""

    class Kind(models.TextChoices):
        TEXT_TO_IMAGE = "text_to_image", _("Text to image")
        EDIT = "edit", _("Edit")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="jobs"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="jobs",
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TEXT_TO_IMAGE)
    model = models.CharField(max_length=300)
    prompt = models.TextField()
    negative_prompt = models.TextField(blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    steps = models.PositiveIntegerField()
    guidance = models.FloatField()
    seed = models.BigIntegerField()
    num_images = models.PositiveIntegerField(default=1)
    strength = models.FloatField(null=True, blank=True)
    source_image = models.FileField(upload_to="sources/%Y/%m/%d", blank=True)
    # An edit's mask (white: repaint, black: keep), from the alpha of the uploaded PNG.
    mask_image = models.FileField(upload_to="masks/%Y/%m/%d", blank=True, default="", db_default="")
    # How its images are encoded (generation/images.py): png, jpeg or webp, and the JPEG and
    # WebP quality (OpenAI's output_compression; null: the best).
    output_format = models.CharField(max_length=8, default="png", db_default="png")
    output_compression = models.PositiveSmallIntegerField(null=True, blank=True)
    # Previews sent while it renders, to an OpenAI stream (0: none).
    partial_images = models.PositiveSmallIntegerField(default=0, db_default=0)

    lane = models.CharField(max_length=16, choices=Lane.choices, default=Lane.FREE)
    # The workspace's share of its lane at dispatch and its cap on running jobs (from the plan).
    dispatch_weight = models.PositiveIntegerField(default=1)
    max_in_flight = models.PositiveIntegerField(default=1)
    # Its place in the fair queue, stamped at admission and never changed (generation/queue.py):
    # the virtual finish tag, and the admission number that breaks ties between equal tags.
    finish_tag = models.BigIntegerField(default=0)
    queue_seq = models.BigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)

    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    request_hash = models.CharField(max_length=64, blank=True)
    # Where to deliver this job's changes (generation/webhooks.py), and which: any of start,
    # progress, completed (completed is always sent).
    # Defaults in the database too, so that SQL fills (bench/, tests) need not name them.
    webhook = models.URLField(max_length=2000, blank=True, default="", db_default="")
    webhook_events_filter = models.JSONField(default=list, blank=True, db_default=[])
    # The X-Request-ID of the request that admitted it: the worker's log lines carry it.
    # (A database default too: bulk fills in SQL, such as the benchmarks', leave it out.)
    request_id = models.CharField(max_length=128, blank=True, default="", db_default="")
    # How strictly its output is checked (generation/safety.py), from its plan at admission.
    moderation_level = models.CharField(
        max_length=16, choices=ModerationLevel.choices, default=ModerationLevel.STANDARD,
        db_default=ModerationLevel.STANDARD,
    )  # fmt: skip

    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="one_job_per_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(fields=["workspace", "-created_at"]),
            models.Index(fields=["status", "lane", "created_at"]),
            models.Index(fields=["started_at"]),
            # The admin's newest-first job list and the dashboard's last hour (bounded ranges).
            models.Index(fields=["created_at"], name="job_created_at"),
            models.Index(fields=["finished_at"], name="job_finished_at"),
            # The fair queue's indexes (generation/queue.py). Partial: they hold only what is
            # queued or running, so their depth follows the queue, not the jobs ever made.
            models.Index(
                fields=["workspace", "finish_tag", "queue_seq"],
                condition=Q(status="queued"),
                name="job_queued_by_workspace",
            ),
            models.Index(
                fields=["finish_tag", "queue_seq"],
                condition=Q(status="queued"),
                name="job_queued_in_fair_order",
            ),
            models.Index(
                fields=["workspace"], condition=Q(status="running"), name="job_running_by_workspace"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status not in self.ACTIVE_STATUSES

    @property
    def batch_key(self) -> tuple[object, ...]:
        """Jobs with equal keys can run in one pipeline call."""
        return (
            self.model,
            self.kind,
            self.width,
            self.height,
            self.steps,
            self.guidance,
            self.strength,
            bool(self.mask_image),
        )


class QueueFlow(models.Model):
    """A workspace's flow in the fair queue (generation/queue.py): where its next job stands
    and how many of its jobs run. Derived from its jobs, and changed in the same transaction
    as they are; the jobs stay the truth (queue.flows_refresh derives it again)."""

    workspace = models.OneToOneField(
        "accounts.Workspace", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    # The finish tag and admission number of its latest admitted job: the next one starts there.
    last_finish = models.BigIntegerField(default=0)
    last_seq = models.BigIntegerField(default=0)
    # Its first queued job in fair order (null: nothing queued), that job's lane and the cap
    # on running jobs its plan gave it.
    head_finish = models.BigIntegerField(null=True, blank=True)
    head_seq = models.BigIntegerField(null=True, blank=True)
    head_lane = models.CharField(max_length=16, blank=True)
    max_in_flight = models.PositiveIntegerField(default=1)
    running = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            # The flows a worker may take from: something queued and room under the cap. A
            # workspace at its cap leaves this index, so it never lengthens a claim's scan.
            models.Index(
                fields=["head_lane", "head_finish", "head_seq"],
                condition=Q(head_finish__isnull=False, running__lt=models.F("max_in_flight")),
                name="queueflow_eligible",
            ),
        ]

    def __str__(self) -> str:
        return f"queue flow of {self.workspace_id}"


class QueueClock(models.Model):
    """The fair queue's virtual time, V: the service front, in start tags (one row)."""

    vtime = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"virtual time {self.vtime}"


def image_upload_to(image: Image, filename: str) -> str:
    return f"images/{image.workspace_id}/{image.job_id}/{filename}"


class Image(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="images")
    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="images"
    )
    index = models.PositiveIntegerField()
    file = models.FileField(upload_to=image_upload_to)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    seed = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    # Fixed when the image is made, from the plan then: a later downgrade never shortens it.
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="one_image_per_index")]
        indexes = [
            models.Index(fields=["workspace", "-created_at"]),
            models.Index(fields=["created_at"], name="image_created_at"),  # the dashboard's hour
        ]

    def __str__(self) -> str:
        return f"image {self.index} of job {self.job_id}"


class PolicyRule(models.Model):
    """A term the content policy refuses, with why and what to write instead."""

    term = models.CharField(
        max_length=200,
        help_text=_(
            "A word or name, matched on word boundaries ignoring case, accents and punctuation."
        ),
    )
    reason = models.CharField(max_length=300)
    suggestion = models.TextField(help_text=_("Shown to the person: what they could ask instead."))
    replacement = models.CharField(
        max_length=300,
        blank=True,
        help_text=_(
            "Replaces the matched phrase (with a leading 'in the style of' or 'by') in "
            "the suggested rewrite of the prompt."
        ),
    )
    active = models.BooleanField(default=True)
    level = models.CharField(
        max_length=16,
        choices=ModerationLevel.choices,
        default=ModerationLevel.STANDARD,
        blank=True,  # a form that leaves it out (older admin scripts) keeps the default
        help_text=_("Standard rules apply to every request; strict ones only at the strict level."),
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["term"]

    def __str__(self) -> str:
        return self.term


def translation_languages() -> list[tuple[str, str]]:
    """The languages a rule can be written in besides English (settings.LANGUAGES): a
    callable, so that adding a language needs no migration."""
    return [(code, name) for code, name in settings.LANGUAGES if code != "en"]


class PolicyRuleTranslation(models.Model):
    """A rule's reason, suggestion and rewrite in another language than English. A refusal
    in a language without one falls back to the rule's English text."""

    rule = models.ForeignKey(PolicyRule, on_delete=models.CASCADE, related_name="translations")
    language = models.CharField(_("language"), max_length=10, choices=translation_languages)
    reason = models.CharField(_("reason"), max_length=300)
    suggestion = models.TextField(
        _("suggestion"), help_text=_("Shown to the person: what they could ask instead.")
    )
    replacement = models.CharField(
        _("replacement"),
        max_length=300,
        blank=True,
        help_text=_(
            "Replaces the matched phrase (with a leading 'à la manière de', 'dans le style de' "
            "or 'par') in the suggested rewrite of the prompt. Empty: no rewrite is suggested."
        ),
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "language"], name="one_policy_translation_per_language"
            )
        ]

    def __str__(self) -> str:
        return f"{self.rule} ({self.language})"


class PolicyRefusal(models.Model):
    """A refused prompt, kept for operators to review."""

    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="policy_refusals"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    rule = models.ForeignKey(PolicyRule, on_delete=models.SET_NULL, null=True)
    prompt = models.TextField()
    reviewed = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.rule} in {self.workspace}"


class OutputRefusal(models.Model):
    """A job whose images the output safety check flagged: none was stored or shown. Kept
    with its prompt (never the image) for operators to review."""

    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="output_refusals"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    job = models.ForeignKey(
        Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="output_refusals"
    )
    prompt = models.TextField()
    negative_prompt = models.TextField(blank=True)
    moderation_level = models.CharField(max_length=16, choices=ModerationLevel.choices)
    images_flagged = models.PositiveIntegerField(default=1)
    reviewed = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["created_at"], name="outputrefusal_created_at")]

    def __str__(self) -> str:
        return f"output refused in {self.workspace}"


class WebhookEvent(models.TextChoices):
    START = "start", pgettext_lazy("webhook event", "Start")
    PROGRESS = "progress", pgettext_lazy("webhook event", "Progress")
    COMPLETED = "completed", pgettext_lazy("webhook event", "Completed")


class WebhookSigningSecret(models.Model):
    """The secret that signs a workspace's per-job webhooks (made on first use)."""

    workspace = models.OneToOneField(
        "accounts.Workspace", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    secret = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"signing secret of {self.workspace_id}"


class WebhookEndpoint(models.Model):
    """A URL a workspace registered for every job's changes. Its secret is shown once."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list, blank=True)  # WebhookEvent values; completed always
    secret = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    # Since when every attempt failed (None: the last one succeeded); past
    # WEBHOOK_DISABLE_AFTER the endpoint is disabled and its workspace's owners are told.
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.url

    @property
    def event_labels(self) -> list[str]:
        """The events it receives, in their order, as people read them (active language)."""
        return [str(event.label) for event in WebhookEvent if event in self.events]


class WebhookDelivery(models.Model):
    """One event for one URL: sent, retried with backoff, recorded attempt by attempt. Its id
    is the `webhook-id` every attempt carries, so receivers can drop duplicates."""

    class Status(models.TextChoices):
        PENDING = "pending", pgettext_lazy("webhook delivery", "Pending")
        SUCCEEDED = "succeeded", pgettext_lazy("webhook delivery", "Succeeded")
        FAILED = "failed", pgettext_lazy("webhook delivery", "Failed")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    job = models.ForeignKey(
        Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="webhook_deliveries"
    )
    endpoint = models.ForeignKey(
        WebhookEndpoint,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="deliveries",
        help_text=_("Empty: the job's own `webhook`."),
    )
    url = models.URLField(max_length=2000)
    event = models.CharField(max_length=16, choices=WebhookEvent.choices)
    payload = models.JSONField(null=True, blank=True)  # rendered at the first attempt
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    retry_until = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = _("webhook deliveries")
        indexes = [models.Index(fields=["workspace", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.event} to {self.url} ({self.status})"

    @property
    def message_id(self) -> str:
        return f"msg_{self.id.hex}"


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="tries")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    latency_ms = models.PositiveIntegerField()
    response_status = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    succeeded = models.BooleanField(default=False)

    class Meta:
        ordering = ["number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="one_attempt_per_number")
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"
