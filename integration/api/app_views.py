"""LoveRescue app API views. STUB: replaced by the implementation."""

from integration.api.base import ClientAppView


class CheckInView(ClientAppView):
    pass


class RatioView(ClientAppView):
    pass


class ActivityView(ClientAppView):
    pass


class AssessmentView(ClientAppView):
    pass


class JournalView(ClientAppView):
    pass


class TherapistLinkListView(ClientAppView):
    pass


class TherapistLinkView(ClientAppView):
    pass


class TaskListView(ClientAppView):
    pass


class TaskCompleteView(ClientAppView):
    pass
