"""core.compiled_query.CompiledQuery: an ORM definition compiled once per process gives exactly the ORM's rows
(tuples, single values or model instances with select_related and annotations, every converter applied) for
uuid, date and str arguments, binds them only as parameters, and refuses any definition whose SQL or
parameters vary other than in its arguments."""

from __future__ import annotations

import itertools
import uuid
from datetime import date, timedelta

import pytest
from django.db import connection, connections
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.test.utils import CaptureQueriesContext

from core.actors import Actor
from core.compiled_query import CompiledQuery
from core.time import utc_now
from integration.models import CheckIn, Client
from leads.models import CareosKeyPair, PartnerPlatform, PlatformApiKey
from leads.services.platforms import api_key_create, platform_create, platform_suspend
from tests.integration import partner_world
from tests.integration.factories import make_client

pytestmark = pytest.mark.django_db

now = partner_world.now  # the partner API's clock pinned (a fixture)

ACTOR = Actor.system("tests")


def api_keys(key_id, environment, platform_slug):
    return (
        PlatformApiKey.objects.select_related("platform")
        .filter(
            key_id=key_id,
            environment=environment,
            platform__slug=platform_slug,
            platform__status=PartnerPlatform.Status.ACTIVE,
            revoked_at__isnull=True,
        )
        .order_by()
    )


KEYS = CompiledQuery(api_keys, strs=("key_id", "environment", "platform_slug"))


@pytest.fixture
def platforms():
    """Two platforms (one with a contact email, one without), a live and a test key on the first."""
    first = platform_create(slug="firstos", contact_email="ops@example.org", actor=ACTOR)
    second = platform_create(slug="secondos", actor=ACTOR)
    keys = [
        api_key_create(platform=first, environment="live", actor=ACTOR).api_key,
        api_key_create(platform=first, environment="test", actor=ACTOR).api_key,
        api_key_create(platform=second, environment="live", actor=ACTOR).api_key,
    ]
    return first, second, keys


def same_instance(found, stored) -> None:
    for field in type(stored)._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(stored, field.attname), field.name
    assert not found._state.adding and found._state.db == "default"


def test_model_rows_with_select_related_are_the_orms(platforms, django_assert_num_queries):
    first, second, keys = platforms
    for key in keys:
        arguments = {"key_id": key.key_id, "environment": key.environment, "platform_slug": key.platform.slug}
        with django_assert_num_queries(1):
            found = KEYS.one(**arguments)
            assert found.platform.slug == key.platform.slug  # the platform came with the key: no query
        (expected,) = api_keys(**arguments)
        same_instance(found, expected)
        same_instance(found.platform, expected.platform)
        assert found.platform.phone_hash_salt == expected.platform.phone_hash_salt  # decrypted, not the stored text
        assert len(found.platform.phone_hash_salt) == 64
    assert KEYS.one(key_id=keys[0].key_id, environment="live", platform_slug="firstos").platform.contact_email == (
        "ops@example.org"
    )
    assert KEYS.one(key_id=keys[2].key_id, environment="live", platform_slug="secondos").platform.contact_email is None


def test_str_arguments_select_and_the_filters_hold(platforms):
    first, _, keys = platforms
    live = keys[0]
    assert KEYS.one(key_id=live.key_id, environment="live", platform_slug="firstos").pk == live.pk
    assert KEYS.one(key_id=live.key_id, environment="test", platform_slug="firstos") is None
    assert KEYS.one(key_id=live.key_id, environment="live", platform_slug="secondos") is None
    assert KEYS.one(key_id=keys[1].key_id, environment="test", platform_slug="firstos").pk == keys[1].pk
    platform_suspend(platform=first, actor=ACTOR)  # read again at every call
    assert KEYS.one(key_id=live.key_id, environment="live", platform_slug="firstos") is None


def test_str_arguments_are_only_ever_parameters(platforms):
    _, _, keys = platforms
    for hostile in ("' OR '1'='1", "%", "%s", "%(key_id)s", "\\", keys[0].key_id + "' --"):
        assert KEYS.rows(key_id=hostile, environment="live", platform_slug="firstos") == []
        assert KEYS.rows(key_id=keys[0].key_id, environment=hostile, platform_slug="firstos") == []
        assert KEYS.rows(key_id=keys[0].key_id, environment="live", platform_slug=hostile) == []


def test_the_orms_sql_compiled_once(platforms):
    _, _, keys = platforms
    builds = []

    def counted(**arguments):
        builds.append(arguments)
        return api_keys(**arguments)

    query = CompiledQuery(counted, strs=("key_id", "environment", "platform_slug"))
    arguments = {"key_id": keys[0].key_id, "environment": "live", "platform_slug": "firstos"}
    with CaptureQueriesContext(connection) as orm:
        list(api_keys(**arguments))
    for _ in range(3):
        with CaptureQueriesContext(connection) as compiled:
            assert len(query.rows(**arguments)) == 1
        assert [q["sql"] for q in compiled.captured_queries] == [q["sql"] for q in orm.captured_queries]
    assert len(builds) == 2  # the two probe builds, then never again
    assert keys[0].key_id not in str(builds)  # the probes are not real values


def test_tuples_and_flat_values_with_uuid_and_date_arguments_are_the_orms(now):
    clients = [make_client("Ann", "One", email="ann@example.com"), make_client("Bob", "Two"), make_client("Cy", "Nil")]
    Client.objects.filter(pk=clients[1].pk).update(email=None)
    today = now.date()
    for offset, client in itertools.product(range(6), clients[:2]):
        CheckIn.objects.create(client=client, date=today - timedelta(days=offset), mood=offset + 1, closeness=3)

    def window(client_id, start, today):
        return CheckIn.objects.filter(client_id=client_id, date__range=(start, today)).order_by("date")

    tuples = CompiledQuery(
        lambda client_id, start, today: window(client_id, start, today).values_list("date", "mood", "client__email"),
        uuids=("client_id",),
        dates=("start", "today"),
    )
    flat = CompiledQuery(
        lambda client_id, start, today: window(client_id, start, today).values_list("date", flat=True),
        uuids=("client_id",),
        dates=("start", "today"),
    )
    seen = []
    for client, start in itertools.product(clients, (today - timedelta(days=2), today - timedelta(days=30))):
        arguments = {"client_id": client.pk, "start": start, "today": today}
        rows = tuples.rows(**arguments)
        assert rows == [tuple(row) for row in tuples.build(**arguments)]
        assert all(type(row) is tuple and type(row[0]) is date for row in rows)
        assert flat.rows(**arguments) == list(flat.build(**arguments))
        seen.append(rows)
    assert seen[0] and len(seen[0]) < len(seen[1])  # the date window binds
    assert seen[1][0][2] == "ann@example.com" and seen[3][0][2] is None  # decrypted; NULL stays NULL
    assert seen[4] == seen[5] == []
    # A uuid given as its text is taken as UUIDField takes it.
    assert tuples.rows(client_id=str(clients[0].pk), start=today - timedelta(days=2), today=today) == seen[0]


def test_model_rows_keep_annotations_and_deferred_fields():
    client = make_client("Ann", "One", email="ann@example.com")
    query = CompiledQuery(
        lambda first_name: (
            Client.objects.filter(first_name=first_name)
            .only("id", "first_name", "email")
            .annotate(full=Concat(F("first_name"), Value(" "), F("last_name")))
        ),
        strs=("first_name",),
    )
    (found,) = query.rows(first_name="Ann")
    assert found.pk == client.pk and found.full == "Ann One" and found.email == "ann@example.com"
    assert found.get_deferred_fields() == Client.objects.only("id", "first_name", "email").get().get_deferred_fields()
    assert "last_name" in found.get_deferred_fields()
    assert query.rows(first_name="Nobody") == []


REFUSED = {
    "a derived str (prefix match)": (
        lambda key_id: PlatformApiKey.objects.filter(key_id__startswith=key_id).values_list("pk"),
        {"strs": ("key_id",)},
        "more than its arguments",
    ),
    "a str changed in Python (lower)": (
        lambda slug: PartnerPlatform.objects.filter(slug=slug.lower()).values_list("pk"),
        {"strs": ("slug",)},
        "more than its arguments",
    ),
    "a str changed in Python (strip)": (
        lambda slug: PartnerPlatform.objects.filter(slug=slug.strip()).values_list("pk"),
        {"strs": ("slug",)},
        "more than its arguments",
    ),
    "a number computed from a str (its length)": (
        lambda size: CareosKeyPair.objects.filter(key_size=len(size)).values_list("pk"),
        {"strs": ("size",)},
        "does not depend on size",
    ),
    "a uuid as text": (
        lambda client_id: PlatformApiKey.objects.filter(key_id=str(client_id)).values_list("pk"),
        {"uuids": ("client_id",)},
        "more than its arguments",
    ),
    "a day derived from a date": (
        lambda day: CheckIn.objects.filter(date__gte=day - timedelta(days=1)).values_list("pk"),
        {"dates": ("day",)},
        "more than its arguments",
    ),
    "a date against a timestamp column": (
        lambda day: Client.objects.filter(created_at__gte=day).values_list("pk"),
        {"dates": ("day",)},
        "more than its arguments",
    ),
    "the clock": (
        lambda key_id: PlatformApiKey.objects.filter(key_id=key_id, created_at__lte=utc_now()).values_list("pk"),
        {"strs": ("key_id",)},
        "more than its arguments",
    ),
    "an unused argument": (
        lambda key_id, environment: PlatformApiKey.objects.filter(key_id=key_id).values_list("pk"),
        {"strs": ("key_id", "environment")},
        "does not depend on environment",
    ),
    "an argument as SQL text": (
        lambda key_id: PlatformApiKey.objects.extra(where=[f"key_id = '{key_id}'"]).values_list("pk"),
        {"strs": ("key_id",)},
        "SQL depends on more than its arguments",
    ),
    "dict rows": (
        lambda key_id: PlatformApiKey.objects.filter(key_id=key_id).values("pk"),
        {"strs": ("key_id",)},
        "rows are tuples",
    ),
    "prefetch_related": (
        lambda slug: PartnerPlatform.objects.filter(slug=slug).prefetch_related("api_keys"),
        {"strs": ("slug",)},
        "prefetch_related",
    ),
    "select_for_update": (
        lambda key_id: PlatformApiKey.objects.filter(key_id=key_id).select_for_update(),
        {"strs": ("key_id",)},
        "select_for_update",
    ),
}


@pytest.mark.filterwarnings("ignore:DateTimeField .* received a naive datetime")
@pytest.mark.parametrize("name", list(REFUSED))
def test_a_definition_varying_in_more_than_its_arguments_is_refused(name):
    build, types, message = REFUSED[name]
    query = CompiledQuery(build, **types)
    arguments = dict.fromkeys(types.get("strs", ()), "x") | dict.fromkeys(types.get("dates", ()), date(2025, 1, 1))
    arguments |= dict.fromkeys(types.get("uuids", ()), uuid.uuid4())
    with pytest.raises(ValueError, match=message):
        query.rows(**arguments)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="named twice"):
        CompiledQuery(lambda a: None, uuids=("a",), strs=("a",))
    with pytest.raises(TypeError, match="takes key_id, environment, platform_slug"):
        KEYS.rows(key_id="a", environment="live")
    with pytest.raises(TypeError, match="takes key_id, environment, platform_slug"):
        KEYS.rows(key_id="a", environment="live", platform_slug="x", other="y")
    with pytest.raises(TypeError, match="str argument was given int"):
        KEYS.rows(key_id=12, environment="live", platform_slug="x")


# Statements of their own (a column order no other query uses), one per mode: a statement prepared earlier on
# the test's connection stays prepared there.
PROBES = {
    prepared: CompiledQuery(
        lambda key_id, order=("id" if prepared else "-id"): PlatformApiKey.objects.filter(key_id=key_id)
        .order_by(order)
        .values_list("environment", "platform_id", "key_id", "id"),
        strs=("key_id",),
    )
    for prepared in (True, False)
}


@pytest.mark.parametrize("prepared", [True, False], ids=["prepared", "unprepared"])
def test_on_postgresql_it_runs_on_the_kept_cursor_and_is_prepared_once(require_postgres, platforms, settings, prepared):
    """Bound by the server on the connection's kept cursor (core.kept_cursor), as a prepared statement unless
    settings.DB_PREPARED_STATEMENTS is off; the rows are the ORM's either way."""
    settings.DB_PREPARED_STATEMENTS = prepared
    probe = PROBES[prepared]
    for key in platforms[2]:
        assert probe.rows(key_id=key.key_id) == list(probe.build(key_id=key.key_id))
    assert probe.rows(key_id="missing") == []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s",
            ['SELECT "leads_platformapikey"."environment" AS "environment", "leads_platformapikey"."platform_id"%'],
        )
        statements = [row[0] for row in cursor.fetchall()]
    order = "ASC" if prepared else "DESC"
    mine = [statement for statement in statements if statement.endswith(f"ORDER BY 4 {order}")]
    assert len(mine) == (1 if prepared else 0), statements or _all_prepared()
    if prepared:
        assert "$1" in mine[0]  # the argument bound by the server, not quoted into the text
    assert prepared in connections["default"].__dict__["_kept_cursors"]


def _all_prepared() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0][:200] for row in cursor.fetchall()]
