"""Scenario 11 — abuse of the public verification endpoint, on the certifier's own
HTTP server (the service run in this event loop): token enumeration gets one uniform
404 (same status, body and headers, `date` aside) whatever the token looks like, then
the failed-lookup rate limit (429, per client address, not fooled by a forged
X-Forwarded-For); no internal field or identifier ever appears in a response, JSON or
HTML, whatever the certificate's status and the tenant's privacy rule.

Clients are told apart by their source address (127.0.0.x), as the certifier sees them.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from services.certifier import service as certifier
from shared.db.uow import TenantUnitOfWork
from shared.settings import Settings
from tests.support.certificates import SeededCertificate, seed_certified
from tests.support.figures import figure
from tests.support.fleet import answering, configure, create_fleet_topics, free_port, running
from tests.support.programmes import publish_sample

FAILED_LOOKUPS_PER_MINUTE = 30  # docs/operations.md: "30 a minute, per pod"
PUBLIC_FIELDS = {"programme", "holder", "issued_at", "expires_at", "status"}
PUBLIC_STATUSES = {"valid", "expired", "revoked"}
ROUTES = ("/certs/verify/", "/api/v1/certs/verify/")
ACCEPTS = {"json": "application/json", "html": "text/html"}
ISSUED = datetime.now(UTC) - timedelta(days=30)
# Names of internal columns and states: none may show in a response.
INTERNAL_WORDS = (
    "tenant_id",
    "tenantid",
    "enrolment_id",
    "enrollment_id",
    "user_id",
    "certificate_id",
    "programme_id",
    "program_id",
    "org_unit",
    "public_token",
    "holder_name_rule",
    "holder_display_name",
    "user_display_name",
    "completion_event_id",
    "programme_version",
    "revoked_at",
    "expired_at",
    "renewal_of",
)


@dataclass(frozen=True)
class Issued:
    """A seeded certificate, its tenant's privacy rule and its stored status."""

    certificate: SeededCertificate
    rule: str
    status: str  # active | revoked | expired (as stored)


@pytest.fixture
async def verify_base(settings: Settings) -> AsyncIterator[str]:
    """The certifier service, running; the base URL of its HTTP server."""
    await create_fleet_topics(settings)
    port = free_port()
    async with running(certifier.run, configure(settings, engine_port=free_port(), http_port=port)):
        await answering(f"http://127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}"


def client(base: str, address: str) -> httpx.AsyncClient:
    """A client whose requests come from `address` (any 127.0.0.x reaches 127.0.0.1)."""
    return httpx.AsyncClient(
        base_url=base, transport=httpx.AsyncHTTPTransport(local_address=address), timeout=10
    )


Answer = tuple[int, bytes, tuple[tuple[str, str], ...]]


def answer(response: httpx.Response) -> Answer:
    """What a response tells a client, the `date` header aside."""
    headers = tuple(sorted((k.lower(), v) for k, v in response.headers.items() if k != "date"))
    return response.status_code, response.content, headers


async def _issue(pool: asyncpg.Pool) -> list[Issued]:
    """Three tenants (one per privacy rule), each with a valid, a revoked and an
    expired certificate."""
    issued = []
    for rule in ("full", "initials", "hidden"):
        sample = await publish_sample(pool, prerequisites=False)
        async with TenantUnitOfWork(pool, sample.tenant_id) as uow:
            await uow.connection.execute("UPDATE tenants SET holder_name_rule = $1", rule)
            await uow.commit()
        for status in ("active", "revoked", "expired"):
            certificate = await seed_certified(pool, sample, issued_at=ISSUED)
            if status != "active":
                async with TenantUnitOfWork(pool, sample.tenant_id) as uow:
                    await uow.connection.execute(
                        f"UPDATE certificates SET status = $2, {status}_at = now() WHERE id = $1",
                        certificate.certificate_id,
                        status,
                    )
                    await uow.commit()
            issued.append(Issued(certificate, rule, status))
    return issued


def lookalikes(token: str) -> list[str]:
    """Tokens one step from a real one (never the token itself)."""
    swapped = ("B" if token[0] == "A" else "A") + token[1:]
    steps = [
        token[:-1] + ("x" if token[-1] != "x" else "y"),
        swapped,
        token.swapcase(),
        token[:-1],
        token + "A",
        token[::-1],
    ]
    assert token not in steps, token
    return steps


def probes(issued: list[Issued]) -> dict[str, str]:
    """Tokens that must all get the same 404, by what they look like (URL-encoded
    where the raw form would not reach the route at all)."""
    revoked = next(i.certificate.public_token for i in issued if i.status == "revoked")
    active = next(i.certificate.public_token for i in issued if i.status == "active")
    return {
        "unknown-well-formed": secrets.token_urlsafe(24),
        "unknown-minimum-length": "a" * 22,
        "too-short": "abc",
        "too-long": "A" * 129,
        "very-long": "A" * 4000,
        "spaces": "not%20a%20token",
        "sql": "%27%20OR%201%3D1--",
        "nul": "%00",
        "unicode": "%E2%9C%94" * 8,
        "html": "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
        **{f"revoked-lookalike-{n}": t for n, t in enumerate(lookalikes(revoked)[:3])},
        **{f"valid-lookalike-{n}": t for n, t in enumerate(lookalikes(active)[3:])},
    }


async def test_enumeration_gets_one_uniform_404_then_the_rate_limit(
    pool: asyncpg.Pool, verify_base: str
) -> None:
    issued = await _issue(pool)
    tokens = probes(issued)
    assert len(tokens) < FAILED_LOOKUPS_PER_MINUTE
    answers: dict[str, dict[Answer, list[str]]] = {}
    for n, (route, (kind, accept)) in enumerate((r, a) for r in ROUTES for a in ACCEPTS.items()):
        async with client(verify_base, f"127.0.0.{10 + n}") as c:  # a budget per combination
            for name, token in tokens.items():
                response = await c.get(route + token, headers={"accept": accept})
                answers.setdefault(kind, {}).setdefault(answer(response), []).append(name)
    for kind, distinct in answers.items():
        assert len(distinct) == 1, {kind: [names for names in distinct.values()]}
        [(status, body, _)] = distinct
        assert status == 404, body
        for token in tokens.values():  # nothing the client sent is echoed back
            assert token.encode() not in body

    # The limit: failed look-ups 1..30 get the 404, the 31st gets 429, and from then
    # on everything from that client does, a real token included (no oracle left).
    real = next(i for i in issued if i.status == "active").certificate.public_token
    async with client(verify_base, "127.0.0.20") as attacker:
        codes = [
            (await attacker.get(f"/api/v1/certs/verify/{secrets.token_urlsafe(24)}")).status_code
            for _ in range(FAILED_LOOKUPS_PER_MINUTE + 1)
        ]
        assert codes == [404] * FAILED_LOOKUPS_PER_MINUTE + [429]
        limited = {
            answer(await attacker.get(route + token, headers={"accept": accept}))
            for route in ROUTES
            for accept in ACCEPTS.values()
            for token in (real, secrets.token_urlsafe(24), "abc")
        }
        [(status, _, headers)] = limited
        assert status == 429
        assert dict(headers)["retry-after"] == "60"
    # A forged X-Forwarded-For from an untrusted peer changes nothing.
    async with client(verify_base, "127.0.0.21") as forger:
        forged = [
            (
                await forger.get(
                    f"/certs/verify/{secrets.token_urlsafe(24)}",
                    headers={"x-forwarded-for": f"10.9.{i // 250}.{i % 250}"},
                )
            ).status_code
            for i in range(FAILED_LOOKUPS_PER_MINUTE + 1)
        ]
        assert forged[-1] == 429
    # Another client is not limited.
    async with client(verify_base, "127.0.0.22") as bystander:
        assert (await bystander.get(f"/certs/verify/{real}")).status_code == 200
    figure(
        "11-verification-abuse",
        probe_kinds=len(tokens),
        requests_compared=len(tokens) * len(ROUTES) * len(ACCEPTS),
        distinct_404_answers={kind: len(d) for kind, d in answers.items()},
        rejected_at_request=codes.index(429) + 1,
    )


# Found by this tier (fixed: the routes take `{token:path}`): a token with a `/` in it
# (sent as %2F) never reached the verification route: Starlette's router answered with
# its bare `404 Not Found` (text/plain, none of the page's headers: no Cache-Control: no-store,
# no CSP, no Referrer-Policy) and the failed look-up is not counted by the limiter.
# The contract says an unknown or malformed token gets the same 404 whatever it looks like.
SLASHED = {
    "encoded-slash": "a%2Fb",
    "only-a-slash": "%2F",
    "traversal": "..%2F..%2Fetc",
    "empty": "",
}


async def test_a_token_with_a_slash_gets_the_same_404(verify_base: str) -> None:
    async with client(verify_base, "127.0.0.40") as c:
        for route in ROUTES:
            for accept in ACCEPTS.values():
                reference = answer(
                    await c.get(route + secrets.token_urlsafe(24), headers={"accept": accept})
                )
                for name, token in SLASHED.items():
                    got = answer(await c.get(route + token, headers={"accept": accept}))
                    assert got == reference, (name, route, accept, got)


def _secrets(issued: Issued, sample_ids: list[str]) -> set[str]:
    c = issued.certificate
    found = {str(c.tenant_id), str(c.enrolment_id), str(c.certificate_id), str(c.user_id)}
    found |= {str(c.programme_id), *sample_ids}
    if issued.rule != "full":
        found |= {"Ada Lovelace", "Lovelace"}
    return found


async def _internal_ids(pool: asyncpg.Pool, tenant: uuid.UUID) -> list[str]:
    """Every identifier of the tenant's catalogue and programme rows."""
    async with TenantUnitOfWork(pool, tenant) as uow:
        rows = await uow.connection.fetch(
            "SELECT id FROM evaluations UNION ALL SELECT id FROM programme_requirements"
            " UNION ALL SELECT completion_event_id FROM certificates"
            " UNION ALL SELECT created_by_event_id FROM enrolments"
        )
    return [str(r["id"]) for r in rows]


async def test_no_internal_field_in_any_response(pool: asyncpg.Pool, verify_base: str) -> None:
    issued = await _issue(pool)
    expected_holder = {"full": "Ada Lovelace", "initials": "A. L.", "hidden": None}
    expected_status = {"active": "valid", "revoked": "revoked", "expired": "expired"}
    checked = 0
    async with client(verify_base, "127.0.0.30") as c:
        for item in issued:
            secret = _secrets(item, await _internal_ids(pool, item.certificate.tenant_id))
            for route in ROUTES:
                url = route + item.certificate.public_token
                as_json = await c.get(url, headers={"accept": ACCEPTS["json"]})
                as_html = await c.get(url, headers={"accept": ACCEPTS["html"]})
                assert (as_json.status_code, as_html.status_code) == (200, 200)
                view = as_json.json()
                assert set(view) == PUBLIC_FIELDS
                assert view["status"] == expected_status[item.status]
                assert view["status"] in PUBLIC_STATUSES
                assert view["holder"] == expected_holder[item.rule]
                for response in (as_json, as_html):
                    text = response.text + repr(sorted(response.headers.items()))
                    leaked = {s for s in secret if s in text}
                    leaked |= {w for w in INTERNAL_WORDS if w in text.lower()}
                    assert not leaked, (item, route, response.headers["content-type"])
                    checked += 1
    figure("11-no-internal-fields", certificates=len(issued), responses_scanned=checked)
