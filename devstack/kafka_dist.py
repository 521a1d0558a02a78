"""The Kafka distribution: a Java runtime check and the cached broker jars.

There is no Kafka tarball to unpack: Maven resolves the broker's jars from
``resources/pom.xml`` once, into ``<cache>/kafka-<version>/libs``, and the broker
runs straight from that classpath.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from importlib import resources
from pathlib import Path

from devstack.errors import DevStackError
from devstack.paths import cache_dir
from devstack.processes import file_lock, run, say

# Must match kafka.version in resources/pom.xml.
KAFKA_VERSION = "4.1.1"
MIN_JAVA = 17

JAVA_MISSING = (
    "Java 17+ is required: install openjdk-17-jre-headless "
    "(apt-get install -y openjdk-17-jre-headless)"
)
MAVEN_MISSING = (
    "Maven is required to download the Kafka jars (first run only): install maven "
    "(apt-get install -y maven)"
)

_COMPLETE = "COMPLETE"
_VERSION_RE = re.compile(r'version "(\d+)(?:\.(\d+))?')


def resource_text(name: str) -> str:
    """The text of a file shipped in ``devstack/resources``."""
    return resources.files("devstack").joinpath("resources", name).read_text("utf-8")


def java_executable() -> str:
    """Path of a Java 17+ ``java`` ($JAVA_HOME first, then PATH), or DevStackError."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    java = str(candidate) if candidate and candidate.is_file() else shutil.which("java")
    if java is None:
        raise DevStackError(JAVA_MISSING)
    output = run([java, "-version"], what="java -version", timeout=60)
    major = _java_major(output)
    if major is None or major < MIN_JAVA:
        found = f"Java {major}" if major else "an unrecognised Java"
        raise DevStackError(f"{JAVA_MISSING}; found {found} at {java}")
    return java


def _java_major(version_output: str) -> int | None:
    match = _VERSION_RE.search(version_output)
    if match is None:
        return None
    major = int(match.group(1))
    # Java 8 and older report "1.8.0_..."; the real major is the second number.
    if major == 1 and match.group(2):
        return int(match.group(2))
    return major


def kafka_libs() -> Path:
    """The directory of Kafka jars, downloading them with Maven on first use."""
    root = cache_dir() / f"kafka-{KAFKA_VERSION}"
    libs = root / "libs"
    if (root / _COMPLETE).is_file():
        return libs
    root.parent.mkdir(parents=True, exist_ok=True)
    # Two concurrent first runs must not both download into the same place.
    with file_lock(root.parent / f"kafka-{KAFKA_VERSION}.lock"):
        if not (root / _COMPLETE).is_file():
            _download(root)
    return libs


def _download(root: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DevStackError(MAVEN_MISSING)
    _remove_partials(root)
    say("kafka: downloading jars with mvn (first run only)…")
    started = time.monotonic()
    # Build the whole cache entry in a sibling temp dir and rename it into place, so
    # an interrupted download never leaves a half-filled cache behind.
    partial = Path(tempfile.mkdtemp(prefix=f"{root.name}.", suffix=".partial", dir=root.parent))
    try:
        partial.chmod(0o755)  # mkdtemp makes it private; the cache is not secret
        _resolve_jars(mvn, partial)
        if root.exists():
            shutil.rmtree(root)  # an incomplete entry without its marker
        partial.rename(root)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    jars = len(list((root / "libs").glob("*.jar")))
    say(f"kafka: cached {jars} jars in {root} in {time.monotonic() - started:.1f} s")


def _resolve_jars(mvn: str, target: Path) -> None:
    pom = target / "pom.xml"
    pom.write_text(resource_text("pom.xml"), encoding="utf-8")
    run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={target / 'libs'}",
        ],
        what="mvn dependency:copy-dependencies",
        cwd=target,
        timeout=900,
    )
    jars = sorted(path.name for path in (target / "libs").glob("*.jar"))
    if f"kafka_2.13-{KAFKA_VERSION}.jar" not in jars:
        raise DevStackError(f"mvn did not produce kafka_2.13-{KAFKA_VERSION}.jar in {target}")
    marker = {"kafka_version": KAFKA_VERSION, "jars": jars}
    (target / _COMPLETE).write_text(json.dumps(marker, indent=2), encoding="utf-8")


def _remove_partials(root: Path) -> None:
    """Delete temp dirs left by downloads that were killed (we hold the lock)."""
    for leftover in root.parent.glob(f"{root.name}.*.partial"):
        shutil.rmtree(leftover, ignore_errors=True)
