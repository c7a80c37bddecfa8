"""Partner API views. STUB: replaced by the implementation."""

from integration.api.base import PartnerApiView


class ClientListView(PartnerApiView):
    def get(self, request):
        from rest_framework.response import Response

        return Response({"clients": [], "total": 0})


class ClientProgressView(PartnerApiView):
    pass


class SessionPrepView(PartnerApiView):
    pass


class AssignView(PartnerApiView):
    pass


class CoupleDynamicsView(PartnerApiView):
    pass


class AlertListView(PartnerApiView):
    pass


class AlertReadView(PartnerApiView):
    pass


class OutcomesView(PartnerApiView):
    pass


class WebhookRegisterView(PartnerApiView):
    pass
