"""The reference delivery engine: one endpoint of the platform's assignment contract,
for local runs, demos and tests.

`POST /api/v1/assignments` creates an assignment once per idempotency key (scoped to
the tenant): the same key with the same request always yields the same assignment,
the same key with a different request is refused (409). Keys live in memory, and in
a JSON-lines file when one is given, so that a restart keeps that promise.

`/_admin/faults` makes the next requests fail or stall, so tests and demos can show
what the fleet does while the engine is unavailable without killing the process.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import structlog
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.http import ops_routes

MAX_IDEMPOTENCY_KEY_LENGTH = 255

REQUESTS = Counter(
    "delivery_engine_assignment_requests_total",
    "Assignment requests to the reference delivery engine, by outcome "
    "(created, replayed, conflict, rejected, injected_fault).",
    ["outcome"],
)

log = structlog.get_logger(__name__)


class AssignmentMetadata(BaseModel):
    """What the programmes fleet attaches to an assignment; other keys are kept as given."""

    model_config = ConfigDict(extra="allow", frozen=True)

    program_enrolment_id: UUID
    program_requirement_id: UUID


class AssignmentRequest(BaseModel):
    """The body of `POST /api/v1/assignments`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: UUID
    org_unit_id: UUID | None = None
    user_id: UUID
    evaluation_id: UUID
    evaluation_version_id: UUID | None = None
    metadata: AssignmentMetadata


class FaultPlan(BaseModel):
    """The body of `POST /_admin/faults`: the next `fail_next` assignment requests wait
    `delay_ms`, then fail with `status` (or, when `status` is null, are answered normally)."""

    model_config = ConfigDict(extra="forbid")

    fail_next: int = Field(ge=0)
    status: int | None = Field(503, ge=400, le=599)
    delay_ms: int = Field(0, ge=0, le=60_000)


@dataclass(frozen=True)
class Assignment:
    """One assignment created, with the request that created it (in its JSON form)."""

    tenant_id: UUID
    idempotency_key: str
    assignment_id: UUID
    body: dict[str, Any]
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The record as listed by the API and stored in the state file."""
        return {
            "tenant_id": str(self.tenant_id),
            "idempotency_key": self.idempotency_key,
            "assignment_id": str(self.assignment_id),
            "body": self.body,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Assignment:
        """The inverse of `to_json`."""
        return cls(
            tenant_id=UUID(data["tenant_id"]),
            idempotency_key=str(data["idempotency_key"]),
            assignment_id=UUID(data["assignment_id"]),
            body=dict(data["body"]),
            created_at=datetime.fromisoformat(data["created_at"]),
        )


class IdempotencyConflict(Exception):
    """The idempotency key was already used by this tenant for a different request."""


class AssignmentStore:
    """Assignments by (tenant, idempotency key), optionally persisted as JSON lines."""

    def __init__(self, state_file: Path | None = None) -> None:
        self._state_file = state_file
        self._by_key: dict[tuple[UUID, str], Assignment] = {}
        self._by_id: dict[UUID, Assignment] = {}
        # Check-and-insert spans the file append (an await): concurrent identical
        # requests must still create one assignment.
        self._lock = asyncio.Lock()
        if state_file is not None:
            self._load(state_file)

    async def assign(
        self, tenant_id: UUID, key: str, request: AssignmentRequest
    ) -> tuple[Assignment, bool]:
        """The assignment for `key` in `tenant_id`, and whether it was created just now.

        Raises IdempotencyConflict when the key was used for a different request.
        """
        body = request.model_dump(mode="json")
        async with self._lock:
            existing = self._by_key.get((tenant_id, key))
            if existing is not None:
                if existing.body != body:
                    raise IdempotencyConflict(key)
                return existing, False
            assignment = Assignment(tenant_id, key, uuid.uuid4(), body, datetime.now(UTC))
            if self._state_file is not None:
                # Written before it is remembered: an assignment the file lost would
                # come back with another id after a restart.
                await asyncio.to_thread(_append_line, self._state_file, assignment.to_json())
            self._remember(assignment)
            return assignment, True

    def get(self, assignment_id: UUID) -> Assignment | None:
        """One assignment by its id."""
        return self._by_id.get(assignment_id)

    def assignments(self, tenant_id: UUID | None = None) -> list[Assignment]:
        """Every assignment in creation order, or those of one tenant."""
        every = list(self._by_id.values())
        return every if tenant_id is None else [a for a in every if a.tenant_id == tenant_id]

    def _remember(self, assignment: Assignment) -> None:
        self._by_key[(assignment.tenant_id, assignment.idempotency_key)] = assignment
        self._by_id[assignment.assignment_id] = assignment

    def _load(self, path: Path) -> None:
        if not path.exists():
            return
        text = path.read_text(encoding="utf-8")
        complete, _, torn = text.rpartition("\n")
        if torn:
            # A crash in the middle of an append leaves a partial last line; that
            # assignment was never answered, so it is dropped rather than fatal.
            log.warning("dropping a partial last line of the state file", path=str(path))
            path.write_text(complete + "\n" if complete else "", encoding="utf-8")
        for number, line in enumerate(complete.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                self._remember(Assignment.from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not an assignment record ({exc})") from exc
        log.info("assignments loaded", path=str(path), count=len(self._by_id))


def _append_line(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps(record, separators=(",", ":")) + "\n")


@dataclass
class Stats:
    """Counters served on `/_admin/stats`."""

    requests: int = 0
    created: int = 0
    replayed: int = 0
    conflicts: int = 0
    failed_injected: int = 0


class _Faults:
    """The fault plan in force, consumed one assignment request at a time."""

    def __init__(self) -> None:
        self.plan = FaultPlan(fail_next=0)

    async def take(self) -> int | None:
        """Apply the next injected fault, if any: the status to fail with, or None."""
        plan = self.plan
        if plan.fail_next <= 0:
            return None
        # Consumed before sleeping, so that concurrent requests share out the N faults.
        self.plan = plan.model_copy(update={"fail_next": plan.fail_next - 1})
        if plan.delay_ms:
            await asyncio.sleep(plan.delay_ms / 1000)
        return plan.status


class _Rejected(Exception):
    """A request refused before it reaches the store."""

    def __init__(self, status: int, error: str, details: Any = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.details = details

    def response(self) -> Response:
        content: dict[str, Any] = {"error": self.error}
        if self.details is not None:
            content["details"] = self.details
        return JSONResponse(content, status_code=self.status)


def _error(status: int, error: str) -> Response:
    return JSONResponse({"error": error}, status_code=status)


async def _parse_assignment_request(request: Request) -> tuple[str, UUID, AssignmentRequest]:
    """The idempotency key, the caller's tenant and the body, or _Rejected."""
    key = request.headers.get("idempotency-key", "").strip()
    if not key:
        raise _Rejected(400, "missing Idempotency-Key header")
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise _Rejected(400, f"Idempotency-Key longer than {MAX_IDEMPOTENCY_KEY_LENGTH}")
    tenant_id = _parse_uuid(request.headers.get("x-tenant-id"))
    if tenant_id is None:
        raise _Rejected(400, "missing or invalid X-Tenant-Id header")
    try:
        body = AssignmentRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise _Rejected(
            422, "invalid request body", json.loads(exc.json(include_url=False))
        ) from exc
    if body.tenant_id != tenant_id:
        raise _Rejected(403, "X-Tenant-Id does not match the body's tenant_id")
    return key, tenant_id, body


def _parse_uuid(value: str | None) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        return None


class DeliveryEngine:
    """The HTTP handlers, around one store, one fault plan and the counters."""

    def __init__(self, store: AssignmentStore) -> None:
        self.store = store
        self.stats = Stats()
        self.faults = _Faults()

    async def create_assignment(self, request: Request) -> Response:
        """`POST /api/v1/assignments`."""
        self.stats.requests += 1
        injected = await self.faults.take()
        if injected is not None:
            self.stats.failed_injected += 1
            REQUESTS.labels("injected_fault").inc()
            return _error(injected, "injected fault")
        try:
            key, tenant_id, body = await _parse_assignment_request(request)
        except _Rejected as rejected:
            REQUESTS.labels("rejected").inc()
            return rejected.response()
        try:
            assignment, created = await self.store.assign(tenant_id, key, body)
        except IdempotencyConflict:
            self.stats.conflicts += 1
            REQUESTS.labels("conflict").inc()
            return _error(409, "idempotency key reused with a different request")
        return self._answer(assignment, created)

    def _answer(self, assignment: Assignment, created: bool) -> Response:
        content = {"assignment_id": str(assignment.assignment_id)}
        if created:
            self.stats.created += 1
            REQUESTS.labels("created").inc()
            log.info(
                "assignment created",
                tenant_id=str(assignment.tenant_id),
                assignment_id=str(assignment.assignment_id),
            )
            return JSONResponse(content, status_code=201)
        self.stats.replayed += 1
        REQUESTS.labels("replayed").inc()
        return JSONResponse(content, status_code=200, headers={"Idempotent-Replayed": "true"})

    async def list_assignments(self, request: Request) -> Response:
        """`GET /api/v1/assignments[?tenant_id=]`."""
        raw_tenant = request.query_params.get("tenant_id")
        tenant_id = _parse_uuid(raw_tenant)
        if raw_tenant is not None and tenant_id is None:
            return _error(400, "invalid tenant_id")
        return JSONResponse([a.to_json() for a in self.store.assignments(tenant_id)])

    async def get_assignment(self, request: Request) -> Response:
        """`GET /api/v1/assignments/{assignment_id}`."""
        assignment_id = _parse_uuid(request.path_params["assignment_id"])
        found = self.store.get(assignment_id) if assignment_id is not None else None
        if found is None:
            return _error(404, "assignment not found")
        return JSONResponse(found.to_json())

    async def set_faults(self, request: Request) -> Response:
        """`POST /_admin/faults`."""
        try:
            plan = FaultPlan.model_validate_json(await request.body())
        except ValidationError as exc:
            details = json.loads(exc.json(include_url=False))
            return _Rejected(422, "invalid fault plan", details).response()
        self.faults.plan = plan
        log.info("fault plan set", **plan.model_dump())
        return JSONResponse(plan.model_dump())

    async def get_stats(self, _: Request) -> Response:
        """`GET /_admin/stats`."""
        return JSONResponse(asdict(self.stats))


async def _always_ready() -> dict[str, bool]:
    # Everything the reference engine needs is in its own process.
    return {"assignments": True}


def create_app(state_file: Path | None = None) -> Starlette:
    """The reference delivery engine as an ASGI app (state in memory, and in
    `state_file` as JSON lines when given)."""
    engine = DeliveryEngine(AssignmentStore(state_file))
    app = Starlette(
        routes=[
            Route("/api/v1/assignments", engine.create_assignment, methods=["POST"]),
            Route("/api/v1/assignments", engine.list_assignments, methods=["GET"]),
            Route("/api/v1/assignments/{assignment_id}", engine.get_assignment, methods=["GET"]),
            Route("/_admin/faults", engine.set_faults, methods=["POST"]),
            Route("/_admin/stats", engine.get_stats, methods=["GET"]),
            *ops_routes(_always_ready),
        ]
    )
    app.state.engine = engine
    return app
