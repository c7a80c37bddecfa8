"""Therapist dashboard API: OpenAPI request and response examples, by operationId.

core.openapi_examples attaches them; error responses not given here are rendered by the API's own error body.
Adapted from `shared/specs/therapist-dashboard-api.md` where it shows one, with ids in our formats (`ses_`,
`usr_`, `evl_`, `cmp_`). One story throughout: a therapist's training session with the client labelled
"client-042", compared with the session before it. tests/core/test_openapi_examples.py validates each.
"""

from core.openapi_examples import Example, OperationExamples

SESSION = "ses_0CD2xKuJ4g0NMO4SDTsYrmbA"
PREVIOUS_SESSION = "ses_Lw5Tq8Zr2Xn7Kc4Vb1Hy9Mj3"
THERAPIST = "usr_AD8IdUw8aUhHh2QjgNvR64Oc"
SUPERVISOR = "usr_p4Rk7Wm2Nq9Xz3Lt6Bv1Cy8D"
EVALUATION = "evl_b9LdgYU8D0IGDUfHpZeccKxV"
COMPARISON = "cmp_Vx3Nq7Lr1Zk9Tw5Mb2Hc8Jy4"
CLIENT = "client-042"

PROGRESS_METRICS = {
    "totalMessages": 42,
    "therapistMessages": 21,
    "clientMessages": 21,
    "sessionDuration": 3600,
    "activeTime": 3000,
    "skillScores": {"Active Listening": 85, "Empathy": 78},
    "responseTime": 2.5,
    "conversationFlow": 88,
    "milestonesReached": ["introduction", "exploration"],
    "lastMilestoneTime": "2026-11-30T09:40:00Z",
}
SNAPSHOTS = [
    {"timestamp": "2026-11-30T09:15:00Z", "value": 25},
    {"timestamp": "2026-11-30T09:35:00Z", "value": 50},
    {"timestamp": "2026-11-30T09:55:00Z", "value": 72},
]
ANALYTICS_DATA = {
    "sessionMetrics": [
        {
            "date": "2026-11-30",
            "sessions": 1,
            "therapistSessions": 1,
            "averageSessionProgress": 85,
            "sessionId": SESSION,
            "therapistId": THERAPIST,
            "milestonesAchieved": 2,
            "averageResponseTime": 2.5,
        }
    ],
    "skillProgress": [
        {
            "skill": "Active Listening",
            "skillId": "active-listening",
            "score": 85,
            "trend": "up",
            "category": "therapeutic",
            "sessionsPracticed": 5,
            "averageImprovement": 12,
        }
    ],
    "summaryStats": [
        {
            "value": 1,
            "label": "Total Sessions",
            "therapistId": THERAPIST,
            "trend": {"value": 1, "direction": "up", "period": "recent"},
            "color": "blue",
        }
    ],
    "progressSnapshots": SNAPSHOTS[:1],
}
SESSION_BRIEF = {
    "id": SESSION,
    "clientId": CLIENT,
    "therapistId": THERAPIST,
    "startTime": "2026-11-30T09:15:00Z",
    "endTime": None,
    "status": "active",
    "progress": 72,
}
SESSION_DETAIL = {
    **SESSION_BRIEF,
    "progressSnapshots": SNAPSHOTS,
    "progressMetrics": PROGRESS_METRICS,
    "analyticsData": {**ANALYTICS_DATA, "source": "posted"},
}
FEEDBACK = "Good use of reflective listening; slow down before summarising."

EXAMPLES = {
    "therapist_sessions_list": OperationExamples(
        responses={
            200: {
                "total": 2,
                "page": 1,
                "limit": 20,
                "data": [
                    SESSION_BRIEF,
                    {
                        **SESSION_BRIEF,
                        "id": PREVIOUS_SESSION,
                        "startTime": "2026-11-23T09:00:00Z",
                        "endTime": "2026-11-23T10:00:00Z",
                        "status": "completed",
                        "progress": 64,
                    },
                ],
            }
        },
    ),
    "therapist_sessions_create": OperationExamples(
        request={"clientId": CLIENT, "startTime": "2026-11-30T09:15:00Z"},
        responses={
            201: {
                **SESSION_BRIEF,
                "progress": 0,
                "progressSnapshots": [],
                "progressMetrics": None,
            }
        },
    ),
    "therapist_session_get": OperationExamples(responses={200: SESSION_DETAIL}),
    "therapist_session_update": OperationExamples(
        request=[
            Example({"status": "completed", "endTime": "2026-11-30T10:15:00Z", "progress": 85}, summary="Complete"),
            Example({"status": "paused"}, summary="Pause"),
        ],
        responses={200: {**SESSION_DETAIL, "status": "completed", "endTime": "2026-11-30T10:15:00Z", "progress": 85}},
    ),
    "therapist_progress_record": OperationExamples(
        request={
            "sessionId": SESSION,
            "progressMetrics": PROGRESS_METRICS,
            "therapistId": THERAPIST,
            "evaluationFeedback": FEEDBACK,
        },
        responses={200: {"success": True, "sessionId": SESSION}},
    ),
    "therapist_progress_get": OperationExamples(
        responses={
            200: {
                "sessionId": SESSION,
                "progressMetrics": PROGRESS_METRICS,
                "feedback": [{"therapistId": SUPERVISOR, "feedback": FEEDBACK, "createdAt": "2026-11-30T10:20:00Z"}],
            }
        },
    ),
    "therapist_snapshots_record": OperationExamples(
        request={"sessionId": SESSION, "snapshots": SNAPSHOTS},
        responses={200: {"success": True, "sessionId": SESSION}},
    ),
    "therapist_snapshots_get": OperationExamples(
        responses={
            200: {
                "sessionId": SESSION,
                "snapshots": SNAPSHOTS,
                "milestones": [
                    {
                        "milestoneName": "introduction",
                        "milestoneValue": 25,
                        "achievedAt": "2026-11-30T09:20:00Z",
                        "metadata": {},
                    },
                    {
                        "milestoneName": "exploration",
                        "milestoneValue": 50,
                        "achievedAt": "2026-11-30T09:40:00Z",
                        "metadata": {},
                    },
                ],
            }
        },
    ),
    "therapist_skills_record": OperationExamples(
        request={
            "sessionId": SESSION,
            "therapistId": THERAPIST,
            "skillScores": {"Active Listening": 85, "Empathy": 78},
        },
        responses={200: {"success": True, "sessionId": SESSION, "therapistId": THERAPIST}},
    ),
    "therapist_skills_get": OperationExamples(
        responses={
            200: {
                "sessionId": SESSION,
                "therapistId": THERAPIST,
                "skills": [
                    {
                        "skillName": "Active Listening",
                        "skillCategory": "therapeutic",
                        "currentScore": 85,
                        "practiceSessions": 5,
                        "lastPracticed": "2026-11-30T09:15:00Z",
                        "createdAt": "2026-10-12T14:00:00Z",
                    },
                    {
                        "skillName": "Empathy",
                        "skillCategory": "therapeutic",
                        "currentScore": 78,
                        "practiceSessions": 4,
                        "lastPracticed": "2026-11-30T09:15:00Z",
                        "createdAt": "2026-10-19T14:00:00Z",
                    },
                ],
            }
        },
    ),
    "therapist_analytics_record": OperationExamples(
        request={"sessionId": SESSION, "analyticsData": ANALYTICS_DATA},
        responses={200: {"success": True, "sessionId": SESSION}},
    ),
    "therapist_analytics_get": OperationExamples(
        responses={200: {"sessionId": SESSION, "analyticsData": {**ANALYTICS_DATA, "source": "posted"}}},
    ),
    "therapist_comparisons_create": OperationExamples(
        request={
            "therapistId": THERAPIST,
            "currentSessionId": SESSION,
            "previousSessionId": PREVIOUS_SESSION,
            "improvementScore": 85,
            "metrics": {"progressImprovement": 10, "skillScoreImprovement": 5, "responseTimeImprovement": 0.5},
        },
        responses={
            201: {"success": True, "comparisonId": COMPARISON, "therapistId": THERAPIST, "currentSessionId": SESSION}
        },
    ),
    "therapist_comparisons_list": OperationExamples(
        responses={
            200: {
                "therapistId": THERAPIST,
                "sessionId": SESSION,
                "comparisons": [
                    {
                        "id": COMPARISON,
                        "therapistId": THERAPIST,
                        "currentSessionId": SESSION,
                        "previousSessionId": PREVIOUS_SESSION,
                        "improvementScore": 85,
                        "metrics": {
                            "progressImprovement": 10,
                            "skillScoreImprovement": 5,
                            "responseTimeImprovement": 0.5,
                        },
                        "analyzedAt": "2026-11-30T10:30:00Z",
                        "currentSessionStartedAt": "2026-11-30T09:15:00Z",
                        "previousSessionStartedAt": "2026-11-23T09:00:00Z",
                        "trend": "improving",
                    }
                ],
            }
        },
    ),
    "therapist_evaluations_create": OperationExamples(
        request={
            "sessionId": SESSION,
            "feedback": FEEDBACK,
            "evaluatorId": SUPERVISOR,
            "rating": 4,
            "comments": "Try an open question after each summary.",
        },
        responses={201: {"success": True, "evaluationId": EVALUATION}},
    ),
    "therapist_evaluations_list": OperationExamples(
        responses={
            200: {
                "sessionId": SESSION,
                "evaluations": [
                    {
                        "id": EVALUATION,
                        "feedback": FEEDBACK,
                        "evaluatorId": SUPERVISOR,
                        "rating": 4,
                        "comments": "Try an open question after each summary.",
                        "createdAt": "2026-11-30T10:20:00Z",
                    }
                ],
            }
        },
    ),
}
