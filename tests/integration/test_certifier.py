"""Certificates end to end: completion -> exactly one certificate, verification
page, revocation on reopen; all on the real broker and database."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import httpx

from shared.db.uow import TenantUnitOfWork
from shared.events import decode_event
from shared.messaging.topics import topic_for
from shared.settings import Settings
from tests.support.events import score_remediated
from tests.support.fleet import send
from tests.support.journeys import NOW, TRACEPARENT, certificates, complete, fleet
from tests.support.kafka import consume, drained, eventually, produce
from tests.support.programmes import publish_sample

PUBLIC_FIELDS = {"programme", "holder", "issued_at", "expires_at", "status"}


async def test_completion_issues_one_certificate_that_verifies_and_revokes(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    sample = await publish_sample(pool, prerequisites=False)
    async with fleet(settings) as running_fleet:
        enrolment, submissions = await complete(pool, running_fleet, sample)
        issued_topic = topic_for("certificate.issued", settings.topic_prefix)
        [record] = await consume(settings.kafka_bootstrap_servers, issued_topic, 1)
        issued = decode_event(record.value, "certificate.issued", 1 << 20)
        [certificate] = await certificates(pool, sample.tenant_id)
        completed_at = NOW + timedelta(minutes=2)
        assert issued.data.enrolment_id == enrolment
        assert certificate["issued_at"] == issued.data.issued_at == completed_at
        assert certificate["expires_at"] == completed_at.replace(year=2027)  # P1Y
        assert len(certificate["public_token"]) >= 22
        assert issued.data.verification_url.endswith("/certs/verify/" + certificate["public_token"])
        assert issued.traceparent == TRACEPARENT  # one trace from submission to certificate
        async with TenantUnitOfWork(pool, sample.tenant_id) as uow:
            status = await uow.connection.fetchval("SELECT status FROM enrolments")
        assert status == "certified"

        # The same completion delivered again: still one certificate, no new event.
        completed_topic = topic_for("enrolment.completed", settings.topic_prefix)
        [completion] = await consume(settings.kafka_bootstrap_servers, completed_topic, 1)
        await produce(settings.kafka_bootstrap_servers, completed_topic, [completion.value] * 2)
        await drained(
            settings.kafka_bootstrap_servers,
            settings.topic_prefix + "programmes-certifier",
            [completed_topic],
        )
        assert len(await certificates(pool, sample.tenant_id)) == 1

        url = f"{running_fleet.verify_base}/api/v1/certs/verify/{certificate['public_token']}"
        async with httpx.AsyncClient() as client:
            view = (await client.get(url)).json()
        assert set(view) == PUBLIC_FIELDS
        assert view == {
            "programme": "Certified Safety Inspector 2025",
            "holder": "A. L.",  # the tenant's default rule: initials
            "issued_at": completed_at.isoformat(),
            "expires_at": completed_at.replace(year=2027).isoformat(),
            "status": "valid",
        }

        # A correction takes theory back: reopened, revoked, and the page says so.
        theory = submissions["theory"].data.submission_id
        await send(
            running_fleet.settings,
            score_remediated(
                sample.tenant_id,
                submission_id=theory,
                score_version=2,
                remediated_at=NOW + timedelta(days=3),
                score=20.0,
            ),
        )
        revoked_topic = topic_for("certificate.revoked", settings.topic_prefix)
        [record] = await consume(settings.kafka_bootstrap_servers, revoked_topic, 1)
        revoked = decode_event(record.value, "certificate.revoked", 1 << 20)
        assert revoked.data.certificate_id == certificate["id"]
        assert "theory" in revoked.data.reason
        async with httpx.AsyncClient() as client:
            view = (await client.get(url)).json()
        assert view["status"] == "revoked"
        [kept] = await certificates(pool, sample.tenant_id)
        assert kept["public_token"] == certificate["public_token"]  # record and token stay


async def test_verification_hides_everything_but_the_public_fields(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    sample = await publish_sample(pool, prerequisites=False)
    async with fleet(settings) as running_fleet:
        await complete(pool, running_fleet, sample)

        async def issued() -> bool:
            return len(await certificates(pool, sample.tenant_id)) == 1

        await eventually(issued)
        [certificate] = await certificates(pool, sample.tenant_id)
        token = certificate["public_token"]
        url = f"{running_fleet.verify_base}/certs/verify/{token}"
        async with TenantUnitOfWork(pool, sample.tenant_id) as uow:
            await uow.connection.execute("UPDATE tenants SET holder_name_rule = 'hidden'")
            await uow.commit()
        async with httpx.AsyncClient() as client:
            json_view = (await client.get(url)).json()
            page = (await client.get(url, headers={"accept": "text/html"})).text
        assert json_view["holder"] is None
        secrets = {
            str(sample.tenant_id),
            str(certificate["id"]),
            str(certificate["enrolment_id"]),
            str(certificate["user_id"]),
            str(sample.programme_id),
            "Ada",
            "Lovelace",
        }
        for text in (str(json_view), page):
            assert not {s for s in secrets if s in text}, text
        assert "Valid certificate" in page


async def test_unknown_and_malformed_tokens_get_the_same_404_then_a_rate_limit(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with fleet(settings) as running_fleet:
        async with httpx.AsyncClient(base_url=running_fleet.verify_base) as client:
            answers = [
                await client.get(f"/certs/verify/{token}")
                for token in ("x" * 32, "not a token", "%00%27--", "A" * 200, "abc")
            ]
            assert {a.status_code for a in answers} == {404}
            assert len({a.content for a in answers}) == 1
            codes = [
                (await client.get(f"/api/v1/certs/verify/{'y' * 30}")).status_code
                for _ in range(40)
            ]
        assert codes[:25] == [404] * 25
        assert codes[-1] == 429


async def test_an_expired_certificate_says_so(settings: Settings, pool: asyncpg.Pool) -> None:
    sample = await publish_sample(pool, prerequisites=False)
    async with fleet(settings) as running_fleet:
        await complete(pool, running_fleet, sample)

        async def issued() -> bool:
            return len(await certificates(pool, sample.tenant_id)) == 1

        await eventually(issued)
        async with TenantUnitOfWork(pool, sample.tenant_id) as uow:  # as the renewer does
            token = await uow.connection.fetchval(
                "UPDATE certificates SET status = 'expired', expired_at = now()"
                " RETURNING public_token"
            )
            await uow.commit()
        async with httpx.AsyncClient() as client:
            view = (await client.get(f"{running_fleet.verify_base}/certs/verify/{token}")).json()
        assert view["status"] == "expired"
