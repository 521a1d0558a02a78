"""Offline checks of the deployment files, run by deploy/check.sh.

    python deploy/validate.py manifests RENDERED.yaml [--kubernetes-version 1.30 ...]
    python deploy/validate.py compose deploy/docker-compose.yml
    python deploy/validate.py lock pyproject.toml deploy/requirements.txt

`manifests` validates every object of a `kustomize build` output against the API
schemas (kubernetes-validate, strict: unknown fields are errors; the custom resources
against deploy/schemas/), then checks the invariants the runbook relies on: hardened
pods, probes, shutdown budget, PDBs, Services and ServiceMonitor that select
something, the owner's database credentials in the migration Job only, KEDA capped
at the partition count. `compose` checks what the compose-spec schema cannot: that
dependencies, health conditions and volumes refer to things that exist. `lock`
checks that the image's lock still satisfies pyproject.toml's dependencies.
Prints one line per check; exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

SCHEMAS = Path(__file__).with_name("schemas")
CUSTOM_RESOURCES = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject.keda.sh.v1alpha1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.monitoring.coreos.com.v1.json",
}
# shared/runtime.py: consumers drain for up to 20 s (faststream graceful_timeout), the
# outbox flush takes up to 5 s, the HTTP server up to 5 s; plus a margin.
MIN_GRACE_SECONDS = 45
OWNER_SECRET = "programmes-database-owner"
Doc = dict[str, Any]


class Report:
    """Counts checks; prints each failure (and, when verbose, each pass) as it goes."""

    verbose = False

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self.passed = 0
        self.failures = 0

    def check(self, ok: bool, what: str, why: str = "") -> None:
        if not ok:
            print(f"  FAIL {self.scope}: {what}: {why}")
        elif self.verbose:
            print(f"  ok   {self.scope}: {what}")
        self.passed += ok
        self.failures += not ok

    def summary(self) -> int:
        print(f"{self.scope}: {self.passed} checks passed, {self.failures} failed")
        return self.failures


def name_of(doc: Doc) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


# --- manifests ------------------------------------------------------------------------


def validate_schema(doc: Doc, versions: list[str], report: Report) -> None:
    schema_file = CUSTOM_RESOURCES.get((str(doc.get("apiVersion")), str(doc.get("kind"))))
    if schema_file is not None:
        schema = json.loads((SCHEMAS / schema_file).read_text())
        validator = jsonschema.Draft202012Validator(schema)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path)))
        why = "; ".join(f"{dotted(e.path) or '<root>'}: {e.message}" for e in errors)
        report.check(not errors, f"{name_of(doc)} matches deploy/schemas/{schema_file}", why)
        return
    for version in versions:
        what = f"{name_of(doc)} against Kubernetes {version} (strict)"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            report.check(False, what, f"{dotted(error.path)}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            report.check(False, what, error.message)
        else:
            report.check(True, what)


def dotted(path: Iterable[object]) -> str:
    return ".".join(str(p) for p in path)


def pod_specs(doc: Doc) -> Iterator[Doc]:
    kind = doc.get("kind")
    if kind in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        yield doc["spec"]["template"]["spec"]
    elif kind == "CronJob":
        yield doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def containers_of(doc: Doc) -> Iterator[Doc]:
    for pod in pod_specs(doc):
        yield from pod["containers"]


def hardening_problems(pod: Doc) -> list[str]:
    problems = []
    security = pod.get("securityContext", {})
    if security.get("runAsNonRoot") is not True:
        problems.append("pod runAsNonRoot is not true")
    if security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append("pod seccompProfile is not RuntimeDefault")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("service account token is mounted")
    for container in pod.get("containers", []):
        problems += [f"{container['name']}: {p}" for p in container_problems(container)]
    return problems


def container_problems(container: Doc) -> list[str]:
    problems = []
    security = container.get("securityContext", {})
    if security.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if security.get("readOnlyRootFilesystem") is not True:
        problems.append("root filesystem is writable")
    if "ALL" not in security.get("capabilities", {}).get("drop", []):
        problems.append("capabilities are not all dropped")
    resources = container.get("resources", {})
    if not {"cpu", "memory"} <= set(resources.get("requests", {})):
        problems.append("no cpu and memory requests")
    if "memory" not in resources.get("limits", {}):
        problems.append("no memory limit")
    if "/tmp" not in [m.get("mountPath") for m in container.get("volumeMounts", [])]:
        problems.append("/tmp is not mounted (the root filesystem is read-only)")
    return problems


def probe_problems(deployment: Doc) -> list[str]:
    pod = deployment["spec"]["template"]["spec"]
    problems = []
    if pod.get("terminationGracePeriodSeconds", 30) < MIN_GRACE_SECONDS:
        problems.append(f"terminationGracePeriodSeconds < {MIN_GRACE_SECONDS}")
    for container in pod["containers"]:
        live = container.get("livenessProbe", {}).get("httpGet", {}).get("path")
        ready = container.get("readinessProbe", {}).get("httpGet", {}).get("path")
        if (live, ready) != ("/healthz", "/readyz"):
            problems.append(f"{container['name']}: probes are {live}, {ready}")
    return problems


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def template_labels(doc: Doc) -> dict[str, str]:
    return dict(doc["spec"]["template"]["metadata"].get("labels", {}))


def check_relations(docs: list[Doc], max_partitions: int, report: Report) -> None:
    by_kind: dict[str, list[Doc]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    deployments = by_kind.get("Deployment", [])
    check_disruption_budgets(deployments, by_kind.get("PodDisruptionBudget", []), report)
    check_services(deployments, by_kind.get("Service", []), report)
    check_service_monitors(by_kind.get("Service", []), by_kind.get("ServiceMonitor", []), report)
    check_scaled_objects(deployments, by_kind.get("ScaledObject", []), max_partitions, report)
    config_maps = {d["metadata"]["name"] for d in by_kind.get("ConfigMap", [])}
    check_config_references(docs, config_maps, report)
    check_owner_credentials(docs, report)


def check_disruption_budgets(deployments: list[Doc], budgets: list[Doc], report: Report) -> None:
    for deployment in deployments:
        labels = template_labels(deployment)
        selectors = [b["spec"]["selector"].get("matchLabels", {}) for b in budgets]
        covered = any(selects(selector, labels) for selector in selectors)
        report.check(covered, f"{name_of(deployment)} has a PodDisruptionBudget", "none selects it")


def check_services(deployments: list[Doc], services: list[Doc], report: Report) -> None:
    for service in services:
        selector = service["spec"].get("selector", {})
        targets = [d for d in deployments if selects(selector, template_labels(d))]
        port_names = {
            p.get("name")
            for d in targets
            for c in d["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        missing = [
            str(p["targetPort"])
            for p in service["spec"]["ports"]
            if isinstance(p.get("targetPort"), str) and p["targetPort"] not in port_names
        ]
        why = "selects no Deployment" if not targets else f"unknown targetPort {missing}"
        report.check(bool(targets) and not missing, f"{name_of(service)} routes to pods", why)


def check_service_monitors(services: list[Doc], monitors: list[Doc], report: Report) -> None:
    for monitor in monitors:
        selector = monitor["spec"]["selector"].get("matchLabels", {})
        ports = {e.get("port") for e in monitor["spec"].get("endpoints", [])}
        scraped = [
            s["metadata"]["name"]
            for s in services
            if selects(selector, s["metadata"].get("labels", {}))
            and ports & {p.get("name") for p in s["spec"]["ports"]}
        ]
        report.check(bool(scraped), f"{name_of(monitor)} scrapes {sorted(scraped)}", "no Service")


def check_scaled_objects(
    deployments: list[Doc], scaled: list[Doc], max_partitions: int, report: Report
) -> None:
    names = {d["metadata"]["name"]: d for d in deployments}
    for item in scaled:
        spec = item["spec"]
        target = names.get(spec["scaleTargetRef"]["name"])
        report.check(target is not None, f"{name_of(item)} targets a Deployment", "not found")
        if target is not None:
            report.check(
                "replicas" not in target["spec"],
                f"{name_of(target)} leaves replicas to the autoscaler",
                "spec.replicas would fight the HPA on every apply",
            )
        report.check(
            spec.get("maxReplicaCount", 100) <= max_partitions,
            f"{name_of(item)} maxReplicaCount <= {max_partitions} partitions",
            f"{spec.get('maxReplicaCount')} consumers cannot all get a partition",
        )


def check_config_references(docs: list[Doc], config_maps: set[str], report: Report) -> None:
    """envFrom must name the generated (hash-suffixed) ConfigMap, or pods never start."""
    for doc in docs:
        for container in containers_of(doc):
            sources = container.get("envFrom", [])
            refs = [e["configMapRef"]["name"] for e in sources if "configMapRef" in e]
            missing = [r for r in refs if r not in config_maps]
            report.check(not missing, f"{name_of(doc)} envFrom ConfigMaps exist", f"{missing}")


def check_owner_credentials(docs: list[Doc], report: Report) -> None:
    """The schema owner's DSN is mounted into the migration Job and nowhere else."""
    for doc in docs:
        component = doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        if component == "migration":
            continue
        leaks = [c["name"] for c in containers_of(doc) if OWNER_SECRET in secret_names(c)]
        report.check(
            not leaks,
            f"{name_of(doc)} does not see the owner's credentials",
            f"{leaks} reference {OWNER_SECRET}, which belongs to the migration Job only",
        )


def secret_names(container: Doc) -> set[str]:
    env = [e.get("valueFrom", {}) for e in container.get("env", [])]
    names = {v["secretKeyRef"]["name"] for v in env if "secretKeyRef" in v}
    sources = container.get("envFrom", [])
    return names | {e["secretRef"]["name"] for e in sources if "secretRef" in e}


def check_images(docs: list[Doc], report: Report) -> None:
    for doc in docs:
        for container in containers_of(doc):
            image = container["image"]
            last = image.rsplit("/", 1)[-1]
            pinned = "@sha256:" in image or (":" in last and not last.endswith(":latest"))
            report.check(pinned, f"{name_of(doc)} image {image} is pinned", "no tag or digest")


def manifests(args: argparse.Namespace) -> int:
    report = Report(args.name)
    docs = [d for d in yaml.safe_load_all(Path(args.file).read_text()) if d]
    newest = kubernetes_validate.utils.latest_version()
    versions = [newest if v == "latest" else v for v in args.kubernetes_version]
    print(f"{args.name}: {len(docs)} objects, Kubernetes {', '.join(versions)}")
    for doc in docs:
        validate_schema(doc, versions, report)
    for doc in docs:
        for pod in pod_specs(doc):
            problems = hardening_problems(pod)
            report.check(not problems, f"{name_of(doc)} pod is hardened", "; ".join(problems))
        if doc["kind"] == "Deployment":
            problems = probe_problems(doc)
            why = "; ".join(problems)
            report.check(not problems, f"{name_of(doc)} probes and grace period", why)
    check_relations(docs, args.max_partitions, report)
    if args.require_pinned_images:
        check_images(docs, report)
    return report.summary()


# --- compose --------------------------------------------------------------------------


def compose(args: argparse.Namespace) -> int:
    report = Report("compose")
    spec = yaml.safe_load(Path(args.file).read_text())
    services: dict[str, Doc] = spec["services"]
    volumes = set(spec.get("volumes") or {})
    print(f"compose: {len(services)} services: {', '.join(sorted(services))}")
    for name, service in services.items():
        for dependency, condition in dependencies(service):
            target = services.get(dependency)
            ok = target is not None and condition_holds(condition, target)
            why = "no such service" if target is None else f"{condition} cannot be met"
            report.check(ok, f"{name} waits for {dependency} ({condition})", why)
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0] if isinstance(mount, str) else mount.get("source", "")
            declared = source.startswith((".", "/", "~")) or source in volumes
            report.check(declared, f"{name} volume {source} is declared", "not under volumes:")
        if "build" in service or str(service.get("image", "")).startswith("programmes"):
            report.check(
                service.get("read_only") is True and "ALL" in service.get("cap_drop", []),
                f"{name} runs read-only without capabilities",
                "read_only/cap_drop missing",
            )
    return report.summary()


def dependencies(service: Doc) -> Iterator[tuple[str, str]]:
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        yield from ((d, "service_started") for d in depends)
    else:
        yield from ((d, (c or {}).get("condition", "service_started")) for d, c in depends.items())


def condition_holds(condition: str, target: Doc) -> bool:
    if condition == "service_healthy":
        return "healthcheck" in target
    if condition == "service_completed_successfully":
        return str(target.get("restart", "no")) == "no"
    return True


# --- lock -----------------------------------------------------------------------------

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def pinned_versions(lock: str) -> dict[str, Version]:
    """name -> version of the lock's lines that apply to this interpreter (CPython 3.11)."""
    from packaging.markers import Marker

    pins: dict[str, Version] = {}
    for line in lock.splitlines():
        match = _PIN.match(line)
        if match and (match.group(3) is None or Marker(match.group(3)).evaluate()):
            pins[canonicalize_name(match.group(1))] = Version(match.group(2))
    return pins


def lock(args: argparse.Namespace) -> int:
    report = Report("lock")
    project = tomllib.loads(Path(args.pyproject).read_text())["project"]
    pins = pinned_versions(Path(args.lock).read_text())
    required = project["dependencies"]
    print(f"lock: {len(required)} dependencies of {args.pyproject}, {len(pins)} pins")
    for text in required:
        requirement = Requirement(text)
        version = pins.get(canonicalize_name(requirement.name))
        ok = version is not None and requirement.specifier.contains(version, prereleases=True)
        why = "not in the lock" if version is None else f"locked {version}"
        report.check(ok, f"{requirement} is locked", f"{why}; regenerate it (see its header)")
    return report.summary()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="print passing checks too")
    commands = parser.add_subparsers(dest="command", required=True)
    m = commands.add_parser("manifests", help="validate a rendered kustomization")
    m.add_argument("file")
    m.add_argument("--name", default="manifests", help="what the output lines are prefixed with")
    m.add_argument("--kubernetes-version", action="append", default=[])
    m.add_argument("--max-partitions", type=int, default=12)
    m.add_argument("--require-pinned-images", action="store_true")
    m.set_defaults(run=manifests)
    c = commands.add_parser("compose", help="cross-references of a compose file")
    c.add_argument("file")
    c.set_defaults(run=compose)
    lk = commands.add_parser("lock", help="the image's lock satisfies pyproject.toml")
    lk.add_argument("pyproject")
    lk.add_argument("lock")
    lk.set_defaults(run=lock)
    args = parser.parse_args(argv)
    Report.verbose = args.verbose
    if args.command == "manifests" and not args.kubernetes_version:
        args.kubernetes_version = ["latest"]
    return 1 if args.run(args) else 0


if __name__ == "__main__":
    sys.exit(main())
