# syntax=docker/dockerfile:1
#
# One image for every role of the fleet: ENTRYPOINT is the `programmes` command and
# CMD picks the role (`run orchestrator|certifier|renewer`, `renew`, `migrate`,
# `replay`, `dlq ...`). Build from the repository root:
#
#   docker build -t programmes:dev .
#   docker run --rm programmes:dev --help
#
# The base is pinned by exact tag (Python patch release and Debian release). Pin it by
# digest as well (`python:3.11.14-slim-bookworm@sha256:...`) where a registry is
# reachable: `docker buildx imagetools inspect python:3.11.14-slim-bookworm` prints it.
# It was not written here because this repository is prepared without registry access.
# Builder and runtime must use the same base: the virtualenv's interpreter is a symlink
# to the base image's /usr/local/bin/python3.11.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- builder: the locked dependencies and the project, into /opt/programmes -------
FROM ${PYTHON_IMAGE} AS builder

# Compile bytecode at build time (the runtime root filesystem is read-only), copy
# rather than hard-link out of uv's cache mount, and never let uv fetch another Python.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN pip install --no-cache-dir uv==0.13.9 \
    && uv venv --python /usr/local/bin/python3.11 /opt/programmes

WORKDIR /src

# Dependencies first, from the hash-checked lock (deploy/requirements.txt, generated
# from pyproject.toml; see its header): this layer is rebuilt only when the lock changes.
COPY deploy/requirements.txt deploy/requirements.txt
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install --python /opt/programmes/bin/python --require-hashes \
        -r deploy/requirements.txt

# Then the project itself as a regular (non-editable) wheel: the packages listed in
# [tool.hatch.build.targets.wheel] plus the force-included schemas/. README.md is
# needed because pyproject.toml names it as the package's readme. --no-deps keeps the
# image to exactly the locked set; `uv pip check` fails the build if pyproject.toml
# gained a dependency the lock does not have (deploy/check.sh catches that earlier).
COPY pyproject.toml README.md ./
COPY cli cli
COPY devstack devstack
COPY services services
COPY shared shared
COPY schemas schemas
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install --python /opt/programmes/bin/python --no-deps . \
    && uv pip check --python /opt/programmes/bin/python

# --- runtime: the base image, the virtualenv, an unprivileged user -------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="programmes" \
      org.opencontainers.image.description="Programmes & Certifications: orchestrator, certifier, renewer and the operator command line."

# A fixed numeric UID/GID, so that Kubernetes can check runAsNonRoot without resolving
# names and manifests can state runAsUser: 10001. /var/lib/programmes is the one
# writable directory of the image (the reference delivery engine's --state file in
# docker-compose); everything else the processes write goes to /tmp.
RUN groupadd --system --gid 10001 programmes \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin programmes \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/programmes

COPY --from=builder /opt/programmes /opt/programmes

# PROGRAMMES_HTTP_HOST: the services default to loopback, which nothing outside the
# container could reach. PROGRAMMES_LOG_FORMAT: JSON lines for the log collector
# (`auto` would pick JSON anyway without a TTY, but `docker run -t` would not).
ENV PATH=/opt/programmes/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PROGRAMMES_LOG_FORMAT=json \
    PROGRAMMES_HTTP_HOST=0.0.0.0

USER 10001:10001
WORKDIR /tmp

# certifier (public verification page), orchestrator, renewer (loop mode), and the
# reference delivery engine; each also serves /healthz, /readyz and /metrics there.
EXPOSE 8080 8081 8082 8090

# No HEALTHCHECK: the port depends on the role chosen by CMD, Kubernetes uses its own
# probes, and docker-compose.yml declares one per service.
ENTRYPOINT ["programmes"]
CMD ["run", "orchestrator"]
