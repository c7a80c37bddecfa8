"""Mark system API (spec: "System"): GET /api/v1/system/status and GET /api/v1/system/encryption/status.
Organization-scoped like every Mark route; every Mark role reads them (viewer included). The checks and
counts are patients.system's (docs/mark.md, "API: system")."""

from __future__ import annotations

from rest_framework.response import Response

from patients import system
from patients.api import system_serializers as s
from patients.api.views import _MarkView, _schema

ERRORS = (400, 401, 403, 404, 429)


class SystemStatusView(_MarkView):
    @_schema(
        "mark_system_status",
        "System status: components (operational, degraded, not_configured), this clinic's request metrics",
        responses={200: s.SystemStatusOutput},
        errors=ERRORS,
    )
    def get(self, request):
        return Response(s.SystemStatusOutput(system.system_status(organization=self.organization(request))).data)


class EncryptionStatusView(_MarkView):
    @_schema(
        "mark_encryption_status",
        "Encryption status: key rotation and this clinic's encrypted rows",
        responses={200: s.EncryptionStatusOutput},
        errors=ERRORS,
    )
    def get(self, request):
        status = system.encryption_status(organization=self.organization(request))
        return Response(s.EncryptionStatusOutput(status).data)
