"""Therapist dashboard admin (docs/therapist-dashboard.md, "Administration"): training sessions, skills,
comparisons and evaluations, for staff to look at. Read-only, superusers included: the records come from
the API (the services, which audit every write), and staff do not edit training records.

A session's page shows its progress metrics, skill scores, the latest snapshots (SNAPSHOTS_SHOWN of at most
10,000), milestones, progress feedback and evaluations inline. Feedback and evaluation comments are free
text about a person, stored encrypted: staff who may view those rows see them decrypted, and every page
that shows sessions or evaluations is on the audit trail (core.admin.AuditedViewAdminMixin), as in the
Mark admin. Lists filter by therapist, organization, status and start date, and search by id, therapist
username and client label.
"""

from __future__ import annotations

from django.contrib import admin
from django.forms.models import BaseInlineFormSet

from core.admin import AuditedViewAdminMixin, ReadOnlyAdminMixin, admin_link
from sessions_analytics.analytics import comparison_trend
from sessions_analytics.models import (
    Evaluation,
    Milestone,
    ProgressFeedback,
    ProgressMetrics,
    ProgressSnapshot,
    SessionComparison,
    SessionSkillScore,
    Skill,
    TrainingSession,
)

SNAPSHOTS_SHOWN = 200


class _Inline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False


class ProgressMetricsInline(_Inline):
    model = ProgressMetrics
    fields = (
        "total_messages",
        "therapist_messages",
        "client_messages",
        "session_duration",
        "active_time",
        "response_time",
        "conversation_flow",
        "last_milestone_time",
        "updated_at",
    )
    readonly_fields = fields


class SkillScoreInline(_Inline):
    model = SessionSkillScore
    fields = ("skill", "skill_category", "score", "created_at", "recorded_at")
    readonly_fields = fields
    verbose_name_plural = "skill scores"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("skill")

    @admin.display(description="category")
    def skill_category(self, obj: SessionSkillScore) -> str:
        return obj.skill.category


class _LatestSnapshots(BaseInlineFormSet):
    """The latest SNAPSHOTS_SHOWN snapshots (a session may hold 10,000), newest first."""

    def get_queryset(self):
        if not hasattr(self, "_latest"):
            self._latest = list(super().get_queryset().order_by("-timestamp")[:SNAPSHOTS_SHOWN])
        return self._latest


class SnapshotInline(_Inline):
    model = ProgressSnapshot
    formset = _LatestSnapshots
    fields = ("timestamp", "value")
    readonly_fields = fields
    verbose_name_plural = f"progress snapshots (the latest {SNAPSHOTS_SHOWN})"


class MilestoneInline(_Inline):
    model = Milestone
    fields = ("name", "value", "achieved_at", "metadata")
    readonly_fields = fields


class ProgressFeedbackInline(_Inline):
    model = ProgressFeedback
    fields = ("created_at", "author_username", "feedback")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("author")

    @admin.display(description="author")
    def author_username(self, obj: ProgressFeedback) -> str:
        return obj.author.username


class EvaluationInline(_Inline):
    model = Evaluation
    fields = ("public_id", "created_at", "evaluator_username", "rating", "feedback", "comments")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("evaluator")

    @admin.display(description="evaluator")
    def evaluator_username(self, obj: Evaluation) -> str:
        return obj.evaluator.username


@admin.register(TrainingSession)
class TrainingSessionAdmin(AuditedViewAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # The client label is on the session's page (and searchable): the list fits 1,400 px.
    list_display = ("public_id", "therapist_username", "organization_name", "status_progress", "start_time")
    list_select_related = ("therapist", "organization")
    # Only the users and organizations that have sessions, not every account of the platform.
    list_filter = (
        ("therapist", admin.RelatedOnlyFieldListFilter),
        ("organization", admin.RelatedOnlyFieldListFilter),
        "status",
    )
    search_fields = ("=public_id", "therapist__username", "client_label")
    search_help_text = "Session id (ses_...), therapist username or client label."
    date_hierarchy = "start_time"
    ordering = ("-start_time", "-id")
    fields = (
        "public_id",
        "organization",
        "therapist",
        "therapist_public_id",
        "client_label",
        "status",
        "progress",
        "start_time",
        "end_time",
        "snapshot_count",
        "analytics_posted_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    inlines = (
        ProgressMetricsInline,
        SkillScoreInline,
        SnapshotInline,
        MilestoneInline,
        ProgressFeedbackInline,
        EvaluationInline,
    )

    @admin.display(description="therapist", ordering="therapist__username")
    def therapist_username(self, obj: TrainingSession) -> str:
        return admin_link(obj.therapist)

    @admin.display(description="status", ordering="status")
    def status_progress(self, obj: TrainingSession) -> str:
        return f"{obj.get_status_display()} ({obj.progress}%)"

    @admin.display(description="therapistId")
    def therapist_public_id(self, obj: TrainingSession) -> str:
        return obj.therapist.public_id

    @admin.display(description="organization", ordering="organization__name")
    def organization_name(self, obj: TrainingSession) -> str:
        return admin_link(obj.organization)

    @admin.display(description="snapshots stored")
    def snapshot_count(self, obj: TrainingSession) -> int:
        return obj.snapshots.count()


@admin.register(Skill)
class SkillAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "skill_id", "category", "organization_link")
    list_select_related = ("organization",)
    list_filter = ("category", ("organization", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "skill_id", "=organization__public_id")
    search_help_text = "Skill name or id (active-listening), or an organization id."
    fields = ("name", "skill_id", "category", "organization", "created_at")
    readonly_fields = fields

    @admin.display(description="organization", ordering="organization__name")
    def organization_link(self, obj: Skill) -> str:
        return admin_link(obj.organization)


@admin.register(SessionComparison)
class SessionComparisonAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # The comparison id, organization and previous session are on its page (the id is searchable): the list
    # fits 1,400 px beside the filters.
    list_display = ("analyzed_at", "therapist_username", "current_session_link", "score", "trend")
    list_display_links = ("analyzed_at",)
    list_select_related = ("therapist", "organization", "current_session", "previous_session")
    list_filter = (
        ("therapist", admin.RelatedOnlyFieldListFilter),
        ("organization", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("=public_id", "therapist__username", "=current_session__public_id", "=previous_session__public_id")
    search_help_text = "Comparison id (cmp_...), therapist username or either session's id."
    date_hierarchy = "analyzed_at"
    ordering = ("-analyzed_at", "-id")
    fields = (
        "public_id",
        "organization",
        "therapist",
        "current_session",
        "previous_session",
        "improvement_score",
        "progress_improvement",
        "skill_score_improvement",
        "response_time_improvement",
        "trend",
        "analyzed_at",
        "created_by",
    )
    readonly_fields = fields

    @admin.display(description="therapist", ordering="therapist__username")
    def therapist_username(self, obj: SessionComparison) -> str:
        return admin_link(obj.therapist)

    @admin.display(description="current session", ordering="current_session__public_id")
    def current_session_link(self, obj: SessionComparison) -> str:
        return admin_link(obj.current_session, obj.current_session.public_id)

    @admin.display(description="score", ordering="improvement_score")
    def score(self, obj: SessionComparison):
        return obj.improvement_score

    @admin.display(description="trend")
    def trend(self, obj: SessionComparison) -> str:
        return comparison_trend(obj.progress_improvement, obj.skill_score_improvement)


@admin.register(Evaluation)
class EvaluationAdmin(AuditedViewAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # The therapist is the session's, the evaluation id on its page (and searchable): the list fits 1,400 px.
    list_display = ("created_at", "session_link", "evaluator_username", "rating")
    list_display_links = ("created_at",)
    list_select_related = ("session", "session__therapist", "evaluator")
    list_filter = (
        "rating",
        ("evaluator", admin.RelatedOnlyFieldListFilter),
        ("session__organization", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("=public_id", "=session__public_id", "session__therapist__username", "evaluator__username")
    search_help_text = "Evaluation id (evl_...), session id, therapist or evaluator username."
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    fields = ("public_id", "session", "evaluator", "rating", "feedback", "comments", "created_at")
    readonly_fields = fields

    @admin.display(description="session", ordering="session__public_id")
    def session_link(self, obj: Evaluation) -> str:
        return admin_link(obj.session, obj.session.public_id)

    @admin.display(description="therapist", ordering="session__therapist__username")
    def therapist_username(self, obj: Evaluation) -> str:
        return admin_link(obj.session.therapist)

    @admin.display(description="evaluator", ordering="evaluator__username")
    def evaluator_username(self, obj: Evaluation) -> str:
        return admin_link(obj.evaluator)
