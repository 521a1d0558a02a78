"""Who consumes and produces what: the topology of the fleet, in one place.

Services subscribe according to this table and the AsyncAPI document is drawn
from it, so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceTopology:
    """One service of the fleet and the event types it consumes and produces."""

    name: str
    description: str
    consumes: tuple[str, ...]
    produces: tuple[str, ...]

    def group_id(self, prefix: str = "") -> str:
        """The consumer group of this service in an environment with `prefix`."""
        return f"{prefix}programmes-{self.name}"


ORCHESTRATOR = ServiceTopology(
    name="orchestrator",
    description="Enrolments, assignments and the progress ledger.",
    consumes=("enrolment.created", "submission.created", "score.remediated"),
    produces=("enrolment.completed", "enrolment.reopened"),
)
CERTIFIER = ServiceTopology(
    name="certifier",
    description="Issues and revokes certificates; serves the verification page.",
    consumes=("enrolment.completed", "enrolment.reopened"),
    produces=("certificate.issued", "certificate.revoked"),
)
RENEWER = ServiceTopology(
    name="renewer",
    description="Opens renewal enrolments before expiry and marks expired certificates.",
    consumes=(),
    produces=("enrolment.created", "certificate.expired"),
)
FLEET = (ORCHESTRATOR, CERTIFIER, RENEWER)
