#!/usr/bin/env bash
# Session monitoring across every webterm replica: runs `webterm sessions`
# inside each pod (each pod knows only its own sessions).
set -euo pipefail

if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
    cat <<'USAGE'
Usage: scripts/sessions-all.sh [--json] [--kill ID]

Lists the sessions of every pod of the webterm Deployment (namespace webterm),
or ends one by id (prefix) wherever it runs. Credentials come from the pod's
own mounted Secret (WEBTERM_CREDENTIAL_FILE).
USAGE
    exit 0
fi

ns=${WEBTERM_NAMESPACE:-webterm}
mapfile -t pods < <(kubectl -n "$ns" get pods -l app.kubernetes.io/name=webterm -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
[ ${#pods[@]} -gt 0 ] || { echo "sessions-all.sh: no webterm pods in namespace $ns" >&2; exit 1; }
for pod in "${pods[@]}"; do
    echo "== $pod"
    # shellcheck disable=SC2016 # expanded inside the pod, where the file is
    kubectl -n "$ns" exec "$pod" -- sh -c 'exec webterm sessions --url http://127.0.0.1:8080 --credential "$(head -n1 "$WEBTERM_CREDENTIAL_FILE")" "$@"' sh "$@" || true
done
