#!/usr/bin/env bash
# Deploys webterm with kustomize, waits for the rollout and prints the URL.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/deploy.sh [--dry-run] [--overlay NAME] [--context CTX]

Applies manifests/base (or manifests/overlays/NAME) with kubectl, creates
the cluster secret (Secret webterm-cluster-key, a random key) if it does not
exist yet, waits for the Deployment to roll out, and prints where webterm
answers.

  --dry-run        render and validate on the server without changing anything
  --overlay NAME   traefik-ingressroute or socktop
  --context CTX    the kubectl context to use
  -h, --help       this help
USAGE
}

dir="$(cd "$(dirname "$0")/.." && pwd)/manifests/base"
kubectl=(kubectl)
dry=()
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry=(--dry-run=server) ;;
        --overlay) shift; dir="$(cd "$(dirname "$0")/.." && pwd)/manifests/overlays/${1:?--overlay needs a name}" ;;
        --context) shift; kubectl+=(--context "${1:?--context needs a name}") ;;
        -h|--help) usage; exit 0 ;;
        *) echo "deploy.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

[ -d "$dir" ] || { echo "deploy.sh: no kustomization at $dir" >&2; exit 2; }
if grep -q 'change-me-now' "$(cd "$(dirname "$0")/.." && pwd)/manifests/base/credentials.txt"; then
    echo "deploy.sh: warning: manifests/base/credentials.txt still holds the example password" >&2
fi

"${kubectl[@]}" apply -k "$dir" "${dry[@]}"
if [ ${#dry[@]} -gt 0 ]; then
    echo "dry run: nothing changed"
    exit 0
fi
# The cluster secret signs login cookies (and authenticates replicas to each
# other): made once with a random key and kept across deploys, so users stay
# logged in through rollouts. It is not in the manifests, where it would be
# public. The pods wait for it.
if ! "${kubectl[@]}" -n webterm get secret webterm-cluster-key >/dev/null 2>&1; then
    key=$(mktemp)
    trap 'rm -f "$key"' EXIT
    head -c 48 /dev/urandom | base64 | tr -d '\n' >"$key"
    "${kubectl[@]}" -n webterm create secret generic webterm-cluster-key --from-file=key="$key"
    rm -f "$key"
fi
"${kubectl[@]}" -n webterm rollout status deployment/webterm --timeout=180s
host=$("${kubectl[@]}" -n webterm get ingress webterm -o jsonpath='{.spec.rules[0].host}' 2>/dev/null ||
    "${kubectl[@]}" -n webterm get ingressroute webterm -o jsonpath='{.spec.routes[0].match}' 2>/dev/null || true)
echo "webterm is rolled out; it answers at: ${host:-the Service webterm/webterm (no route found)}"
