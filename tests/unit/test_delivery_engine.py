"""The reference delivery engine: idempotency keys, tenancy, faults and its state file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.delivery_engine.app import create_app
from services.delivery_engine.main import serve

TENANT = uuid.UUID("0b6f4d55-0000-4000-8000-000000000001")
OTHER_TENANT = uuid.UUID("0b6f4d55-0000-4000-8000-000000000002")


def body(tenant_id: uuid.UUID = TENANT, **overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "tenant_id": str(tenant_id),
        "org_unit_id": None,
        "user_id": str(uuid.uuid4()),
        "evaluation_id": str(uuid.uuid4()),
        "evaluation_version_id": str(uuid.uuid4()),
        "metadata": {
            "program_enrolment_id": str(uuid.uuid4()),
            "program_requirement_id": str(uuid.uuid4()),
        },
    }
    request.update(overrides)
    return request


def headers(key: str = "key-1", tenant_id: uuid.UUID | str = TENANT) -> dict[str, str]:
    return {"Idempotency-Key": key, "X-Tenant-Id": str(tenant_id)}


def client_for(state_file: Path | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(state_file))
    return httpx.AsyncClient(transport=transport, base_url="http://engine")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for() as http:
        yield http


async def post(
    client: httpx.AsyncClient, request: dict[str, Any], key: str = "key-1", **kw: Any
) -> httpx.Response:
    return await client.post(
        "/api/v1/assignments", json=request, headers=headers(key, kw.get("tenant_id", TENANT))
    )


async def stats(client: httpx.AsyncClient) -> dict[str, int]:
    response = await client.get("/_admin/stats")
    assert response.status_code == 200
    result: dict[str, int] = response.json()
    return result


async def test_same_key_and_body_replays_the_same_assignment(client: httpx.AsyncClient) -> None:
    request = body()
    first = await post(client, request)
    again = await post(client, request)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert first.json()["assignment_id"] == again.json()["assignment_id"]
    assert await stats(client) == {
        "requests": 2,
        "created": 1,
        "replayed": 1,
        "conflicts": 0,
        "failed_injected": 0,
    }


async def test_replay_compares_meaning_not_spelling(client: httpx.AsyncClient) -> None:
    request = body()
    first = await post(client, request)
    spelled_otherwise = {k: v.upper() if isinstance(v, str) else v for k, v in request.items()}
    spelled_otherwise.pop("org_unit_id")  # absent means null
    again = await post(client, spelled_otherwise)
    assert again.status_code == 200
    assert again.json() == first.json()


async def test_same_key_with_a_different_body_conflicts(client: httpx.AsyncClient) -> None:
    request = body()
    assert (await post(client, request)).status_code == 201
    changed = {**request, "evaluation_id": str(uuid.uuid4())}
    response = await post(client, changed)
    assert response.status_code == 409
    assert response.json() == {"error": "idempotency key reused with a different request"}
    assert (await stats(client))["conflicts"] == 1


async def test_keys_are_scoped_per_tenant(client: httpx.AsyncClient) -> None:
    first = await post(client, body(TENANT), key="shared-key")
    second = await post(client, body(OTHER_TENANT), key="shared-key", tenant_id=OTHER_TENANT)
    assert first.status_code == second.status_code == 201
    assert first.json()["assignment_id"] != second.json()["assignment_id"]
    listed = await client.get("/api/v1/assignments", params={"tenant_id": str(OTHER_TENANT)})
    assert [a["assignment_id"] for a in listed.json()] == [second.json()["assignment_id"]]


@pytest.mark.parametrize(
    ("request_headers", "status"),
    [
        ({"X-Tenant-Id": str(TENANT)}, 400),
        ({"Idempotency-Key": "  ", "X-Tenant-Id": str(TENANT)}, 400),
        ({"Idempotency-Key": "k" * 256, "X-Tenant-Id": str(TENANT)}, 400),
        ({"Idempotency-Key": "k"}, 400),
        ({"Idempotency-Key": "k", "X-Tenant-Id": "not-a-uuid"}, 400),
        ({"Idempotency-Key": "k", "X-Tenant-Id": str(OTHER_TENANT)}, 403),
    ],
)
async def test_headers_are_checked(
    client: httpx.AsyncClient, request_headers: dict[str, str], status: int
) -> None:
    response = await client.post("/api/v1/assignments", json=body(), headers=request_headers)
    assert response.status_code == status
    assert "error" in response.json()


@pytest.mark.parametrize(
    "request_body",
    [
        body(user_id="not-a-uuid"),
        body(unexpected="field"),
        body(metadata={"program_enrolment_id": str(uuid.uuid4())}),
        {k: v for k, v in body().items() if k != "evaluation_id"},
    ],
)
async def test_invalid_bodies_are_unprocessable(
    client: httpx.AsyncClient, request_body: dict[str, Any]
) -> None:
    response = await post(client, request_body)
    assert response.status_code == 422
    assert response.json()["details"]


async def test_malformed_json_is_unprocessable(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/assignments", content=b"{nope", headers=headers())
    assert response.status_code == 422


async def test_metadata_keeps_extra_keys(client: httpx.AsyncClient) -> None:
    request = body()
    request["metadata"]["source"] = "renewal"
    created = await post(client, request)
    found = await client.get(f"/api/v1/assignments/{created.json()['assignment_id']}")
    assert found.status_code == 200
    assert found.json()["body"]["metadata"]["source"] == "renewal"
    assert found.json()["idempotency_key"] == "key-1"
    assert found.json()["tenant_id"] == str(TENANT)


async def test_unknown_assignment_is_not_found(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"/api/v1/assignments/{uuid.uuid4()}")).status_code == 404
    assert (await client.get("/api/v1/assignments/not-a-uuid")).status_code == 404


async def test_invalid_tenant_filter_is_a_bad_request(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/assignments", params={"tenant_id": "x"})
    assert response.status_code == 400


@pytest.mark.parametrize("persisted", [False, True])
async def test_concurrent_identical_requests_create_one_assignment(
    tmp_path: Path, persisted: bool
) -> None:
    state_file = tmp_path / "assignments.jsonl" if persisted else None
    request = body()
    async with client_for(state_file) as client:
        responses = await asyncio.gather(*(post(client, request) for _ in range(20)))
        ids = {r.json()["assignment_id"] for r in responses}
        assert len(ids) == 1
        assert sorted(r.status_code for r in responses) == [200] * 19 + [201]
        assert len((await client.get("/api/v1/assignments")).json()) == 1
    if state_file is not None:
        assert len(state_file.read_text().splitlines()) == 1


async def test_injected_faults_fail_then_recover(client: httpx.AsyncClient) -> None:
    plan = await client.post("/_admin/faults", json={"fail_next": 3, "status": 503})
    assert plan.status_code == 200
    request = body()
    failures = [await post(client, request) for _ in range(3)]
    assert [r.status_code for r in failures] == [503, 503, 503]
    recovered = await post(client, request)
    assert recovered.status_code == 201
    assert await stats(client) == {
        "requests": 4,
        "created": 1,
        "replayed": 0,
        "conflicts": 0,
        "failed_injected": 3,
    }


async def test_injected_delay_without_status_answers_normally(client: httpx.AsyncClient) -> None:
    await client.post("/_admin/faults", json={"fail_next": 1, "status": None, "delay_ms": 50})
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await post(client, body())
    assert response.status_code == 201
    assert loop.time() - started >= 0.05
    assert (await stats(client))["failed_injected"] == 0


async def test_invalid_fault_plan_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/_admin/faults", json={"fail_next": -1})
    assert response.status_code == 422


async def test_state_file_keeps_keys_across_restarts(tmp_path: Path) -> None:
    state_file = tmp_path / "assignments.jsonl"
    request = body()
    async with client_for(state_file) as first_run:
        created = await post(first_run, request)
    assert created.status_code == 201
    async with client_for(state_file) as second_run:
        replayed = await post(second_run, request)
        conflicting = await post(second_run, body())
        found = await second_run.get(f"/api/v1/assignments/{created.json()['assignment_id']}")
    assert replayed.status_code == 200
    assert replayed.json() == created.json()
    assert conflicting.status_code == 409
    assert found.status_code == 200


async def test_a_torn_last_line_is_dropped(tmp_path: Path) -> None:
    state_file = tmp_path / "assignments.jsonl"
    async with client_for(state_file) as first_run:
        created = await post(first_run, body())
    with state_file.open("a") as file:
        file.write('{"tenant_id": "0b6f')
    async with client_for(state_file) as second_run:
        listed = (await second_run.get("/api/v1/assignments")).json()
        await post(second_run, body(), key="key-2")
    assert [a["assignment_id"] for a in listed] == [created.json()["assignment_id"]]
    records = [json.loads(line) for line in state_file.read_text().splitlines()]
    assert [r["idempotency_key"] for r in records] == ["key-1", "key-2"]


async def test_a_corrupt_state_file_is_refused(tmp_path: Path) -> None:
    state_file = tmp_path / "assignments.jsonl"
    state_file.write_text("not json\n")
    with pytest.raises(ValueError, match="not an assignment record"):
        create_app(state_file)


async def test_ops_endpoints(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).json()["status"] == "ready"
    await post(client, body())
    metrics = await client.get("/metrics")
    assert 'delivery_engine_assignment_requests_total{outcome="created"}' in metrics.text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_serve_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    original = signal.getsignal(signal.SIGTERM)
    task = asyncio.create_task(serve("127.0.0.1", port, tmp_path / "state.jsonl"))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(100):
            try:
                if (await client.get("/healthz")).status_code == 200:
                    break
            except httpx.ConnectError:
                await asyncio.sleep(0.05)
        response = await post(client, body())
    assert response.status_code == 201
    # serve() owns SIGTERM now: it stops instead of the test process.
    assert signal.getsignal(signal.SIGTERM) is not original
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, timeout=10)
    assert signal.getsignal(signal.SIGTERM) == original


async def test_serve_stops_when_cancelled() -> None:
    task = asyncio.create_task(serve("127.0.0.1", free_port()))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=10)
