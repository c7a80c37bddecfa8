"""LoveRescue integration and app API: request and response examples for the OpenAPI document, by operationId.

core.openapi_examples attaches them (error responses not given here are rendered by the API's own error
body); tests/core/test_openapi_examples.py validates each against the schema. Adapted from `shared/specs/loverescue-integration-api.md` where it shows one, with ids in our formats.
"""

from core.openapi_examples import OperationExamples

EXAMPLES = {
    "api_app_activities_create": OperationExamples(
        request={"date": "2026-11-30", "activity": "date_night", "weekNumber": 12},
        responses={
            201: {
                "id": 3,
                "date": "2026-11-30",
                "activity": "date_night",
                "weekNumber": 12,
                "weeklyStrategy": {
                    "weekNumber": 12,
                    "theme": "communication",
                    "completedDays": 3,
                    "completedAt": "2026-11-30T09:15:00Z",
                },
                "course": {"currentWeek": 3, "isActive": True, "completedAt": "2026-11-30T09:15:00Z"},
            }
        },
    ),
    "api_app_assessments_create": OperationExamples(
        request={"type": "attachment", "score": "7", "responses": "often"},
        responses={201: {"id": 3, "type": "general", "score": "7", "completedAt": "2026-11-30T09:15:00Z"}},
    ),
    "api_app_checkins_create": OperationExamples(
        request={"date": "2026-11-30", "mood": 3, "closeness": 3, "crisis": True},
        responses={
            201: {"date": "2026-11-30", "mood": 3, "closeness": 3, "crisis": True, "updatedAt": "2026-11-30T09:15:00Z"},
            200: {"date": "2026-11-30", "mood": 3, "closeness": 3, "crisis": True, "updatedAt": "2026-11-30T09:15:00Z"},
        },
    ),
    "api_app_journal_create": OperationExamples(
        request={"text": "Thanks, see you tomorrow.", "therapistHidden": True, "crisis": True},
        responses={
            201: {
                "id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65",
                "therapistHidden": True,
                "crisis": True,
                "createdAt": "2026-11-30T09:15:00Z",
            }
        },
    ),
    "api_app_ratios_create": OperationExamples(
        request={"date": "2026-11-30", "positive": 3, "negative": 3},
        responses={
            201: {"date": "2026-11-30", "positive": 3, "negative": 3, "ratio": 72.5},
            200: {"date": "2026-11-30", "positive": 3, "negative": 3, "ratio": 72.5},
        },
    ),
    "api_app_tasks_retrieve": OperationExamples(
        responses={
            200: {
                "tasks": [
                    {
                        "id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65",
                        "description": "Weekly check-in with the client.",
                        "module": "communication-basics",
                        "activities": ["date_night"],
                        "notes": "Prefers morning appointments.",
                        "dueDate": "2026-11-30T09:15:00Z",
                        "priority": "low",
                        "status": "pending",
                        "createdAt": "2026-11-30T09:15:00Z",
                        "completedAt": "2026-11-30T09:15:00Z",
                    }
                ]
            }
        },
    ),
    "api_app_tasks_complete_create": OperationExamples(
        request={"key": "7"},
        responses={
            200: {
                "task": {
                    "id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65",
                    "description": "Weekly check-in with the client.",
                    "module": "communication-basics",
                    "activities": ["date_night"],
                    "notes": "Prefers morning appointments.",
                    "dueDate": "2026-11-30T09:15:00Z",
                    "priority": "low",
                    "status": "pending",
                    "createdAt": "2026-11-30T09:15:00Z",
                    "completedAt": "2026-11-30T09:15:00Z",
                }
            }
        },
    ),
    "api_app_therapist_links_retrieve": OperationExamples(
        responses={
            200: {
                "links": [
                    {
                        "linkId": "29bc14bc-6f18-548f-954f-401c480720eb",
                        "therapist": {
                            "id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65",
                            "firstName": "Jane",
                            "lastName": "Doe",
                        },
                        "permissionLevel": "BASIC",
                        "consent": "granted",
                        "consentGrantedAt": "2026-11-30T09:15:00Z",
                        "consentRevokedAt": "2026-11-30T09:15:00Z",
                    }
                ]
            }
        },
    ),
    "api_app_therapist_links_partial_update": OperationExamples(
        request={"permissionLevel": "BASIC", "consent": "granted"},
        responses={
            200: {
                "link": {
                    "linkId": "29bc14bc-6f18-548f-954f-401c480720eb",
                    "therapist": {"id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65", "firstName": "Jane", "lastName": "Doe"},
                    "permissionLevel": "BASIC",
                    "consent": "granted",
                    "consentGrantedAt": "2026-11-30T09:15:00Z",
                    "consentRevokedAt": "2026-11-30T09:15:00Z",
                }
            }
        },
    ),
    "integration_alerts_list": OperationExamples(
        responses={
            200: {
                "alerts": [
                    {
                        "id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65",
                        "clientId": "7c1999a8-e4e9-565a-8af4-2d03401f3bde",
                        "client": {
                            "id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65",
                            "firstName": "Jane",
                            "lastName": "Doe",
                        },
                        "alertType": "RISK",
                        "severity": "HIGH",
                        "message": "Mood has dropped 2+ SD below baseline for 5 consecutive days",
                        "metadata": {"moodBaseline": 7.2, "currentMood": 3.1, "daysBelow": 5},
                        "readAt": "2026-11-30T09:15:00Z",
                        "createdAt": "2026-11-30T09:15:00Z",
                    }
                ],
                "unreadCount": 3,
                "total": 15,
            }
        },
    ),
    "integration_alert_read": OperationExamples(
        request={"key": "7"},
        responses={
            200: {
                "alert": {
                    "id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65",
                    "clientId": "7c1999a8-e4e9-565a-8af4-2d03401f3bde",
                    "client": {"id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65", "firstName": "Jane", "lastName": "Doe"},
                    "alertType": "CRISIS",
                    "severity": "LOW",
                    "message": "Hi Jane, a reminder of your appointment tomorrow at 10:00.",
                    "metadata": "{}",
                    "readAt": "2026-11-30T09:15:00Z",
                    "createdAt": "2026-11-30T09:15:00Z",
                }
            }
        },
    ),
    "integration_auth": OperationExamples(
        request={
            "apiKey": "pk_live_7Hq2Lx9VbN4cT1mR8sKd3WzE",
            "apiSecret": "sk_live_4eC39HqLyjWDarjtT1zdp7dc9kQ2mX8v",
            "therapistId": "550e8400-e29b-41d4-a716-446655440000",
        },
        responses={
            200: {
                "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c3JfN0hxMkx4OVZiTjRjVDFtUjhzS2QzV3pFIn0.k3Y0x2h8Vf1sQm9pR4tZ7wL6bN5cA0dE2gH3jK8uT1o",
                "expiresIn": 3600,
                "tokenType": "Bearer",
            }
        },
    ),
    "integration_clients_list": OperationExamples(
        responses={
            200: {
                "clients": [
                    {
                        "id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65",
                        "linkId": "29bc14bc-6f18-548f-954f-401c480720eb",
                        "firstName": "Jane",
                        "lastName": "Doe",
                        "email": "jane@example.com",
                        "permissionLevel": "STANDARD",
                        "consentGrantedAt": "2026-01-15T10:00:00Z",
                        "couple": {
                            "id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65",
                            "status": "active",
                            "partner1": {
                                "id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65",
                                "firstName": "Jane",
                                "lastName": "Doe",
                                "withheld": True,
                            },
                            "partner2": {
                                "id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65",
                                "firstName": "John",
                                "lastName": "Doe",
                                "withheld": True,
                            },
                        },
                        "latestActivity": "2026-02-10",
                        "latestMood": 7,
                        "courseWeek": 8,
                        "courseActive": True,
                        "unreadAlerts": 2,
                    }
                ],
                "total": 1,
            }
        },
    ),
    "integration_client_assign": OperationExamples(
        request={
            "taskDescription": "Complete the Gottman Love Map exercise",
            "module": "gottman_love_maps",
            "activities": ["love_map_quiz", "open_ended_questions"],
            "notes": "Focus on curiosity about partner's inner world",
            "dueDate": "2026-02-19",
            "priority": "high",
        },
        responses={
            201: {
                "message": "Activity assigned",
                "task": {
                    "id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65",
                    "description": "Complete the Gottman Love Map exercise",
                    "priority": "high",
                    "dueDate": "2026-02-19T00:00:00.000Z",
                    "createdAt": "2026-11-30T09:15:00Z",
                },
            }
        },
    ),
    "integration_client_progress": OperationExamples(
        responses={
            200: {
                "clientId": "7c1999a8-e4e9-565a-8af4-2d03401f3bde",
                "assessmentScores": [
                    {
                        "type": "attachment",
                        "score": {"style": "anxious", "anxiety": 4.2, "avoidance": 2.1},
                        "completedAt": "2026-11-30T09:15:00Z",
                    }
                ],
                "activityCompletion": {
                    "totalDays": 90,
                    "daysActive": 62,
                    "completionRate": 69,
                    "streak": 12,
                    "tasksCompleted": 8,
                    "tasksPending": 2,
                },
                "courseProgress": {
                    "currentWeek": 8,
                    "isActive": True,
                    "completedWeeks": [1, 2, 3],
                    "weeklyStrategies": [
                        {
                            "weekNumber": 8,
                            "theme": "Gottman — Turning Toward",
                            "completedDays": 3,
                            "completedAt": "2026-11-30T09:15:00Z",
                        }
                    ],
                },
                "moodTrends": [{"date": "2026-02-10", "mood": 7, "closeness": 6}],
                "ratioTrends": [{"date": "2026-02-10", "positive": 5, "negative": 1, "ratio": 5.0}],
                "individualResponses": [
                    {"type": "general", "responses": "often", "completedAt": "2026-11-30T09:15:00Z"}
                ],
                "journalEntries": [
                    {
                        "id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65",
                        "text": "Thanks, see you tomorrow.",
                        "createdAt": "2026-11-30T09:15:00Z",
                    }
                ],
            }
        },
    ),
    "integration_client_session_prep": OperationExamples(
        responses={
            200: {
                "report": {
                    "id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65",
                    "therapistId": "02922711-9ba4-58a0-8a49-2870a59f5367",
                    "clientId": "7c1999a8-e4e9-565a-8af4-2d03401f3bde",
                    "reportDate": "2026-11-30T09:15:00Z",
                    "lastSessionDate": "2026-11-30T09:15:00Z",
                    "activitiesCompleted": "date_night",
                    "assessmentChanges": "Communication score up 2 points.",
                    "moodTrends": "improving",
                    "crisisFlags": "none",
                    "generatedSummary": "Both partners report calmer conflicts this week.",
                    "expertInsights": "Repair attempts are landing; keep the daily check-in.",
                }
            }
        },
    ),
    "integration_couple_dynamics": OperationExamples(
        responses={
            200: {
                "couple": {"id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65", "status": "active"},
                "consent": {"partner1": True, "partner2": True},
                "partner1": {
                    "user": {"id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65", "firstName": "Jane", "lastName": "Doe"},
                    "assessmentScores": [{"type": "general", "score": "7", "completedAt": "2026-11-30T09:15:00Z"}],
                    "activityDays": 3,
                    "moodAvg": 72.5,
                    "withheld": True,
                    "reason": "Follow-up consultation",
                },
                "partner2": {
                    "user": {"id": "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65", "firstName": "Jane", "lastName": "Doe"},
                    "assessmentScores": [{"type": "general", "score": "7", "completedAt": "2026-11-30T09:15:00Z"}],
                    "activityDays": 3,
                    "moodAvg": 72.5,
                    "withheld": True,
                    "reason": "Follow-up consultation",
                },
                "matchups": [
                    {"score": 3, "alignments": "Both want more quality time.", "generatedAt": "2026-11-30T09:15:00Z"}
                ],
                "coupleProfile": "Together 6 years, first child last spring.",
            }
        },
    ),
    "integration_outcomes": OperationExamples(
        responses={
            200: {
                "outcomes": {
                    "summary": {
                        "totalClients": 12,
                        "activeInCourse": 8,
                        "courseCompleted": 3,
                        "totalCrisisAlerts": 1,
                        "totalMilestones": 15,
                        "avgCourseWeek": 6.4,
                    },
                    "clients": [
                        {
                            "clientId": "7c1999a8-e4e9-565a-8af4-2d03401f3bde",
                            "assessmentTypes": 5,
                            "courseWeek": 8,
                            "courseCompleted": False,
                            "crisisAlerts": 0,
                            "milestones": 3,
                        }
                    ],
                }
            }
        },
    ),
    "integration_webhook_register": OperationExamples(
        request={
            "webhookUrl": "https://api.supertool.com/api/webhooks/loverescue",
            "events": ["alert.created", "alert.critical", "milestone.achieved"],
        },
        responses={
            200: {
                "message": "Webhook registered successfully",
                "webhookUrl": "https://api.supertool.com/api/webhooks/loverescue",
                "webhookSecret": "whsec_9tR2mQ7vX4kL8nB3cZ6yH1pD5sF0gJ2w",
                "events": ["alert.created", "alert.critical", "milestone.achieved"],
            }
        },
    ),
}
