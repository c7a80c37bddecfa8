"""Every read of the LoveRescue partner API, scoped to the therapist the partner acts for, one module per
job: `consent` (the link check every client endpoint starts with), `clients`, `progress`, `couples`,
`alerts`, `outcomes`; `common` holds the clock and the SQL helpers they share. (`app` belongs to the
client app API.)

Selectors return rows, model instances and dataclasses in the domain's own (snake_case) names; the API's
output serializers (integration.api.partner_outputs) render them.

Consent is read from the database on every call (no caching), so a client's change applies on the very
next request. Permission filtering happens in the queries: data above a link's level is never fetched
(mood of a BASIC client, journal text below FULL), and journal entries marked `therapist_hidden` are
excluded in SQL at every level.

List reads (clients, alerts, outcomes) run a fixed number of queries whatever the caseload size:
per-client counts are grouped queries over the caseload (hash joins) merged by client id, "latest" values
correlated LIMIT 1 subqueries on a (client, date) index, never per-row lookups from Python.

Dates: "today" is the UTC date (`common.today_utc`); windows end today inclusive (90 days = today and the
89 days before it).
"""
