"""Therapist dashboard API: request and response examples for the OpenAPI document, by operationId.

core.openapi_examples attaches them (error responses not given here are rendered by the API's own error
body); tests/core/test_openapi_examples.py validates each against the schema. Adapted from `shared/specs/therapist-dashboard-api.md` where it shows one, with ids in our formats.
"""

from core.openapi_examples import OperationExamples

EXAMPLES = {
    "therapist_evaluations_list": OperationExamples(
        responses={
            200: {
                "sessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
                "evaluations": [
                    {
                        "id": "evl_b9LdgYU8D0IGDUfHpZeccKxV",
                        "feedback": "Clear reflections; let the client finish before summarising.",
                        "evaluatorId": "5d944cc2-7bf9-5363-bb40-93526dddaad2",
                        "rating": 5,
                        "comments": "Good rapport; work on open questions.",
                        "createdAt": "2026-11-30T09:15:00Z",
                    }
                ],
            }
        },
    ),
    "therapist_evaluations_create": OperationExamples(
        request={
            "sessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
            "feedback": "Clear reflections; let the client finish before summarising.",
            "evaluatorId": "usr_AD8IdUw8aUhHh2QjgNvR64Oc",
            "rating": 5,
            "comments": "Good rapport; work on open questions.",
        },
        responses={201: {"success": True, "evaluationId": "evl_Ua52yl6GbAkrrj4XZWdoBOpc"}},
    ),
    "therapist_sessions_list": OperationExamples(
        responses={
            200: {
                "total": 12,
                "page": 1,
                "limit": 20,
                "data": [
                    {
                        "id": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
                        "clientId": "d8f08383-cd3b-588d-afb0-91fa6ac90eef",
                        "therapistId": "usr_AD8IdUw8aUhHh2QjgNvR64Oc",
                        "startTime": "2026-11-30T09:15:00Z",
                        "endTime": "2026-11-30T09:15:00Z",
                        "status": "active",
                        "progress": 72.5,
                    }
                ],
            }
        },
    ),
    "therapist_sessions_create": OperationExamples(
        request={"clientId": "78cec22d-8628-5293-9668-6b43421b5a58", "startTime": "2026-11-30T09:15:00Z"},
        responses={
            201: {
                "id": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
                "clientId": "78cec22d-8628-5293-9668-6b43421b5a58",
                "therapistId": "usr_AD8IdUw8aUhHh2QjgNvR64Oc",
                "startTime": "2026-11-30T09:15:00Z",
                "endTime": "2026-11-30T09:15:00Z",
                "status": "active",
                "progress": 72.5,
                "progressSnapshots": [{"timestamp": "2026-11-30T09:15:00Z", "value": 72.5}],
                "progressMetrics": {
                    "totalMessages": 12,
                    "therapistMessages": 3,
                    "clientMessages": 3,
                    "sessionDuration": 45,
                    "activeTime": 3,
                    "skillScores": {"key": 72.5},
                    "responseTime": 72.5,
                    "conversationFlow": 72.5,
                    "milestonesReached": ["first_month"],
                    "lastMilestoneTime": "2026-11-30T09:15:00Z",
                },
                "analyticsData": {
                    "sessionMetrics": [
                        {
                            "date": "2026-11-30",
                            "sessions": 3,
                            "therapistSessions": 3,
                            "averageSessionProgress": 72.5,
                            "sessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
                            "therapistId": "231a6ba1-3f70-517d-997d-3f464720b376",
                            "milestonesAchieved": 3,
                            "averageResponseTime": 72.5,
                        }
                    ],
                    "skillProgress": [
                        {
                            "skill": "active_listening",
                            "skillId": "23d5043f-f4d8-5410-8c58-86496b90c3c9",
                            "score": 72.5,
                            "trend": "up",
                            "category": "communication",
                            "sessionsPracticed": 3,
                            "averageImprovement": 72.5,
                        }
                    ],
                    "summaryStats": [
                        {
                            "value": 72.5,
                            "label": "Week 1",
                            "therapistId": "c36a4ff0-fb55-5474-96d7-ec7ec99344c6",
                            "trend": {"value": 72.5, "direction": "up", "period": "30d"},
                            "color": "#4F46E5",
                        }
                    ],
                    "progressSnapshots": [{"timestamp": "2026-11-30T09:15:00Z", "value": 72.5}],
                    "source": "posted",
                },
            }
        },
    ),
    "therapist_session_get": OperationExamples(
        responses={
            200: {
                "id": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
                "clientId": "50c4c685-8f01-5e92-a0fd-c4b6291320d8",
                "therapistId": "usr_AD8IdUw8aUhHh2QjgNvR64Oc",
                "startTime": "2026-11-30T09:15:00Z",
                "endTime": "2026-11-30T09:15:00Z",
                "status": "active",
                "progress": 72.5,
                "progressSnapshots": [{"timestamp": "2026-11-30T09:15:00Z", "value": 72.5}],
                "progressMetrics": {
                    "totalMessages": 12,
                    "therapistMessages": 3,
                    "clientMessages": 3,
                    "sessionDuration": 45,
                    "activeTime": 3,
                    "skillScores": {"key": 72.5},
                    "responseTime": 72.5,
                    "conversationFlow": 72.5,
                    "milestonesReached": ["first_month"],
                    "lastMilestoneTime": "2026-11-30T09:15:00Z",
                },
                "analyticsData": {
                    "sessionMetrics": [
                        {
                            "date": "2026-11-30",
                            "sessions": 3,
                            "therapistSessions": 3,
                            "averageSessionProgress": 72.5,
                            "sessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
                            "therapistId": "c69e8d49-d69b-5945-8785-b9d7750b585d",
                            "milestonesAchieved": 3,
                            "averageResponseTime": 72.5,
                        }
                    ],
                    "skillProgress": [
                        {
                            "skill": "active_listening",
                            "skillId": "a3cab929-05b0-5328-86c7-6bd024c978c8",
                            "score": 72.5,
                            "trend": "up",
                            "category": "communication",
                            "sessionsPracticed": 3,
                            "averageImprovement": 72.5,
                        }
                    ],
                    "summaryStats": [
                        {
                            "value": 72.5,
                            "label": "Week 1",
                            "therapistId": "ff7c8d31-5c52-51e5-a932-da0dc763cb68",
                            "trend": {"value": 72.5, "direction": "up", "period": "30d"},
                            "color": "#4F46E5",
                        }
                    ],
                    "progressSnapshots": [{"timestamp": "2026-11-30T09:15:00Z", "value": 72.5}],
                    "source": "posted",
                },
            }
        },
    ),
    "therapist_session_update": OperationExamples(
        request={"status": "active", "endTime": "2026-11-30T09:15:00Z", "progress": 72.5},
        responses={
            200: {
                "id": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
                "clientId": "85f1c1d1-6227-5f1d-b8ee-4cb5be64dbf5",
                "therapistId": "usr_AD8IdUw8aUhHh2QjgNvR64Oc",
                "startTime": "2026-11-30T09:15:00Z",
                "endTime": "2026-11-30T09:15:00Z",
                "status": "active",
                "progress": 72.5,
                "progressSnapshots": [{"timestamp": "2026-11-30T09:15:00Z", "value": 72.5}],
                "progressMetrics": {
                    "totalMessages": 12,
                    "therapistMessages": 3,
                    "clientMessages": 3,
                    "sessionDuration": 45,
                    "activeTime": 3,
                    "skillScores": {"key": 72.5},
                    "responseTime": 72.5,
                    "conversationFlow": 72.5,
                    "milestonesReached": ["first_month"],
                    "lastMilestoneTime": "2026-11-30T09:15:00Z",
                },
                "analyticsData": {
                    "sessionMetrics": [
                        {
                            "date": "2026-11-30",
                            "sessions": 3,
                            "therapistSessions": 3,
                            "averageSessionProgress": 72.5,
                            "sessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
                            "therapistId": "1ac4c018-540e-5bbf-992a-e390c8aadf50",
                            "milestonesAchieved": 3,
                            "averageResponseTime": 72.5,
                        }
                    ],
                    "skillProgress": [
                        {
                            "skill": "active_listening",
                            "skillId": "b8f9c9ae-9d3e-530e-b8a6-06da0ec13078",
                            "score": 72.5,
                            "trend": "up",
                            "category": "communication",
                            "sessionsPracticed": 3,
                            "averageImprovement": 72.5,
                        }
                    ],
                    "summaryStats": [
                        {
                            "value": 72.5,
                            "label": "Week 1",
                            "therapistId": "8297a5ba-5e60-5edd-9685-da45481bb71e",
                            "trend": {"value": 72.5, "direction": "up", "period": "30d"},
                            "color": "#4F46E5",
                        }
                    ],
                    "progressSnapshots": [{"timestamp": "2026-11-30T09:15:00Z", "value": 72.5}],
                    "source": "posted",
                },
            }
        },
    ),
    "therapist_analytics_get": OperationExamples(
        responses={
            200: {
                "sessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
                "analyticsData": {
                    "sessionMetrics": [
                        {
                            "date": "2025-01-01",
                            "sessions": 1,
                            "therapistSessions": 1,
                            "averageSessionProgress": 85,
                            "sessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
                            "therapistId": "f8c2df11-6fd4-5d69-b1fa-e941ac931485",
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
                            "therapistId": "df00ee42-7dda-5770-9fd3-171f86298489",
                            "trend": {"value": 1, "direction": "up", "period": "recent"},
                            "color": "blue",
                        }
                    ],
                    "progressSnapshots": [{"timestamp": "2026-11-30T09:15:00Z", "value": 25}],
                    "source": "posted",
                },
            }
        },
    ),
    "therapist_analytics_record": OperationExamples(
        request={
            "sessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
            "analyticsData": {
                "sessionMetrics": [
                    {
                        "date": "2025-01-01",
                        "sessions": 1,
                        "therapistSessions": 1,
                        "averageSessionProgress": 85,
                        "sessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
                        "therapistId": "80692df5-d874-5519-be12-4644037ce2bb",
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
                        "therapistId": "3bd39b80-6bf3-551a-ad4b-90c765599249",
                        "trend": {"value": 1, "direction": "up", "period": "recent"},
                        "color": "blue",
                    }
                ],
                "progressSnapshots": [{"timestamp": "2026-11-30T09:15:00Z", "value": 25}],
            },
        },
        responses={200: {"success": True, "sessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA"}},
    ),
    "therapist_comparisons_list": OperationExamples(
        responses={
            200: {
                "therapistId": "bdc42925-89cb-5344-b283-3574644693a2",
                "sessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
                "comparisons": [
                    {
                        "id": "cmp_bYDWuTNSazJuE0OGU2ozlF4F",
                        "therapistId": "7145c7f8-9b3c-5505-88e9-0e6dd2270412",
                        "currentSessionId": "c221986c-8477-5a8a-ac00-987fe2e80e99",
                        "previousSessionId": "94c1934a-5448-5d33-b413-d138948c5f21",
                        "improvementScore": 85,
                        "metrics": {
                            "progressImprovement": 10,
                            "skillScoreImprovement": 5,
                            "responseTimeImprovement": 0.5,
                        },
                        "analyzedAt": "2026-11-30T09:15:00Z",
                        "currentSessionStartedAt": "2026-11-30T09:15:00Z",
                        "previousSessionStartedAt": "2026-11-30T09:15:00Z",
                        "trend": "improving",
                    }
                ],
            }
        },
    ),
    "therapist_comparisons_create": OperationExamples(
        request={
            "therapistId": "usr_AD8IdUw8aUhHh2QjgNvR64Oc",
            "currentSessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
            "previousSessionId": "ses_SmEhvcAbxB4g8k5ducm0sy0m",
            "improvementScore": 85,
            "metrics": {"progressImprovement": 10, "skillScoreImprovement": 5, "responseTimeImprovement": 0.5},
        },
        responses={
            201: {
                "success": True,
                "comparisonId": "cmp_9EnsZmMuDocxy5yuxmOabFp9",
                "therapistId": "usr_AD8IdUw8aUhHh2QjgNvR64Oc",
                "currentSessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
            }
        },
    ),
    "therapist_progress_get": OperationExamples(
        responses={
            200: {
                "sessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
                "progressMetrics": {
                    "totalMessages": 42,
                    "therapistMessages": 21,
                    "clientMessages": 21,
                    "sessionDuration": 3600,
                    "activeTime": 3000,
                    "skillScores": {"Active Listening": 85, "Empathy": 78},
                    "responseTime": 2.5,
                    "conversationFlow": 88,
                    "milestonesReached": ["introduction", "exploration"],
                    "lastMilestoneTime": "2026-11-30T09:15:00Z",
                },
                "feedback": [
                    {
                        "therapistId": "usr_AD8IdUw8aUhHh2QjgNvR64Oc",
                        "feedback": "Clear reflections; let the client finish before summarising.",
                        "createdAt": "2026-11-30T09:15:00Z",
                    }
                ],
            }
        },
    ),
    "therapist_progress_record": OperationExamples(
        request={
            "sessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
            "progressMetrics": {
                "totalMessages": 42,
                "therapistMessages": 21,
                "clientMessages": 21,
                "sessionDuration": 3600,
                "activeTime": 3000,
                "responseTime": 2.5,
                "conversationFlow": 88,
                "skillScores": {"Active Listening": 85, "Empathy": 78},
                "milestonesReached": ["introduction", "exploration"],
                "lastMilestoneTime": "2026-11-30T09:15:00Z",
            },
            "therapistId": "usr_AD8IdUw8aUhHh2QjgNvR64Oc",
            "evaluationFeedback": "Clear reflections; let the client finish before summarising.",
        },
        responses={200: {"success": True, "sessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA"}},
    ),
    "therapist_skills_get": OperationExamples(
        responses={
            200: {
                "sessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
                "therapistId": "usr_AD8IdUw8aUhHh2QjgNvR64Oc",
                "skills": [
                    {
                        "skillName": "Active Listening",
                        "skillCategory": "therapeutic",
                        "currentScore": 85,
                        "practiceSessions": 5,
                        "lastPracticed": "2026-11-30T09:15:00Z",
                        "createdAt": "2026-11-30T09:15:00Z",
                    }
                ],
            }
        },
    ),
    "therapist_skills_record": OperationExamples(
        request={
            "sessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
            "therapistId": "usr_AD8IdUw8aUhHh2QjgNvR64Oc",
            "skillScores": {"Active Listening": 85, "Empathy": 78},
        },
        responses={
            200: {
                "success": True,
                "sessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
                "therapistId": "440cbf85-1740-5656-8231-8bbc786499bd",
            }
        },
    ),
    "therapist_snapshots_get": OperationExamples(
        responses={
            200: {
                "sessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
                "snapshots": [{"timestamp": "2026-11-30T09:15:00Z", "value": 25}],
                "milestones": [
                    {
                        "milestoneName": "exploration",
                        "milestoneValue": 50,
                        "achievedAt": "2026-11-30T09:15:00Z",
                        "metadata": {},
                    }
                ],
            }
        },
    ),
    "therapist_snapshots_record": OperationExamples(
        request={
            "sessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA",
            "snapshots": [{"timestamp": "2026-11-30T09:15:00Z", "value": 25}],
        },
        responses={200: {"success": True, "sessionId": "ses_0CD2xKuJ4g0NMO4SDTsYrmbA"}},
    ),
}
