#!/usr/bin/env bash
# Checks the Helm chart deploy/helm/sage, offline: CI runs it and fails on any error.
#
#   bash scripts/helm-check.sh                 the copies of ops/ files are current, `helm lint
#                                              --strict` and `helm template` for every value set
#                                              below, then every rendered object validated
#                                              (scripts/helm-validate.py)
#   bash scripts/helm-check.sh render ARGS...  print `helm template` of the chart with ARGS
#                                              (e.g. -f deploy/helm/sage/values-nats.yaml)
#   bash scripts/helm-check.sh json ARGS...    the same objects as one JSON array
#   bash scripts/helm-check.sh validate FILE... validate manifests (what the check does per set)
#
# Tools, built or fetched on first use into ${SAGE_TOOLS_DIR:-/var/tmp/sage-tools} (outside the
# repository; later runs reuse them; about 2 minutes the first time, 10 s after):
#   helm               built from the Go module proxy (needs Go), pinned below
#   kubernetes-validate  from PyPI in a venv: Kubernetes' JSON schemas, offline
#   CRD schemas        the CustomResourceDefinitions that Prometheus Operator, KEDA and External
#                      Secrets publish in their repositories, from the Go module proxy
# Kubernetes' own kinds are validated strictly at KUBE_VERSION; custom resources against those CRDs.
#
# Exit codes: 0 valid, 1 a check failed, 2 a tool could not be set up.
set -euo pipefail

HELM_VERSION=v3.17.3
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBE_VERSION=1.33.0
PROMETHEUS_OPERATOR=github.com/prometheus-operator/prometheus-operator@v0.85.0
KEDA=github.com/kedacore/keda/v2@v2.17.2
EXTERNAL_SECRETS=github.com/external-secrets/external-secrets@v1.3.2

root="$(cd "$(dirname "$0")/.." && pwd)"
chart="$root/deploy/helm/sage"
tools="${SAGE_TOOLS_DIR:-/var/tmp/sage-tools}"
helm="$tools/helm-$HELM_VERSION/helm"
venv="$tools/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION"
crds="$tools/crds-$(printf '%s\n' "$PROMETHEUS_OPERATOR" "$KEDA" "$EXTERNAL_SECRETS" | sha1sum | cut -c1-12)"

# Value sets checked: a name, then helm arguments.
VALUE_SETS=(
  "default|"
  "kafka|-f $chart/values-kafka.yaml"
  "rabbitmq|-f $chart/values-rabbitmq.yaml"
  "nats|-f $chart/values-nats.yaml"
  "keda-off|--set relay.autoscaling.mode=none"
  "hpa|--set relay.autoscaling.mode=hpa"
  "external-secret|--set externalSecret.enabled=true -f $chart/values-nats.yaml"
  "minimal|--set serviceMonitor.enabled=false,prometheusRule.enabled=false,grafanaDashboard.enabled=false,networkPolicy.enabled=false,podDisruptionBudget.enabled=false,serviceAccount.create=false,migrations.enabled=false,topologySpread.enabled=false"
  "one-service|--set services.payment-service.enabled=false,relay.databases={order-service}"
)

fail() {
  printf 'helm-check: error: %s\n' "$*" >&2
  exit 2
}

go_bin() {
  local go
  go="$(command -v go || true)"
  [[ -n "$go" ]] || { [[ -x /usr/local/go/bin/go ]] && go=/usr/local/go/bin/go; }
  [[ -n "$go" ]] || fail "$1 is not in $tools and fetching it needs Go: install Go (https://go.dev/doc/install)"
  printf '%s\n' "$go"
}

ensure_helm() {
  [[ -x "$helm" ]] && return
  local go tmp
  go="$(go_bin "helm $HELM_VERSION")"
  mkdir -p "$tools"
  tmp="$(mktemp -d "$tools/.helm-build.XXXXXX")"
  printf 'helm-check: building helm %s from the Go module proxy into %s\n' "$HELM_VERSION" "$tools" >&2
  if ! GOBIN="$tmp" GOFLAGS=-buildvcs=false "$go" install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >"$tmp/build.log" 2>&1; then
    tail -n 20 "$tmp/build.log" >&2
    rm -rf "$tmp"
    fail "building helm $HELM_VERSION with $("$go" version) failed (log above)"
  fi
  mkdir -p "$(dirname "$helm")"
  # Moved into place whole, so a build cut short never leaves a binary that later runs trust.
  mv -f "$tmp/helm" "$helm"
  rm -rf "$tmp"
}

ensure_validator() {
  # The marker is written last, so an install cut short is made again, never trusted.
  [[ -f "$venv/.installed" ]] && return
  command -v python3 >/dev/null || fail "kubernetes-validate needs python3 (apt-get install python3 python3-venv)"
  mkdir -p "$tools"
  rm -rf "$venv"
  printf 'helm-check: installing kubernetes-validate %s from PyPI into %s\n' "$KUBERNETES_VALIDATE_VERSION" "$venv" >&2
  if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"; } >"$tools/kubernetes-validate-install.log" 2>&1; then
    tail -n 20 "$tools/kubernetes-validate-install.log" >&2
    rm -rf "$venv"
    fail "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION failed (log above)"
  fi
  touch "$venv/.installed"
}

ensure_crds() {
  [[ -d "$crds" ]] && return
  local go tmp dir
  go="$(go_bin "the CRD schemas")"
  mkdir -p "$tools"
  tmp="$(mktemp -d "$tools/.crds.XXXXXX")"
  printf 'helm-check: fetching the CRDs of Prometheus Operator, KEDA and External Secrets from the Go module proxy\n' >&2
  for spec in \
    "$PROMETHEUS_OPERATOR:example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" \
    "$PROMETHEUS_OPERATOR:example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml" \
    "$KEDA:config/crd/bases/keda.sh_scaledobjects.yaml" \
    "$EXTERNAL_SECRETS:config/crds/bases/external-secrets.io_externalsecrets.yaml"; do
    dir="$(GOMODCACHE="$tools/gomodcache" GOFLAGS=-modcacherw "$go" mod download -json "${spec%%:*}" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" || true
    [[ -n "$dir" && -f "$dir/${spec#*:}" ]] || {
      rm -rf "$tmp"
      fail "could not fetch ${spec#*:} of ${spec%%:*} from the Go module proxy"
    }
    cp "$dir/${spec#*:}" "$tmp/"
  done
  mv "$tmp" "$crds"
}

render() {
  "$helm" template sage "$chart" --namespace sage --kube-version "$KUBE_VERSION" "$@"
}

validate() {
  "$venv/bin/python" "$root/scripts/helm-validate.py" --kube-version "$KUBE_VERSION" --crd-dir "$crds" \
    --alerts "$root/ops/prometheus/alerts.yml" --dashboard "$root/ops/grafana/outbox-overview.json" "$@"
}

case "${1:-check}" in
  render)
    shift
    ensure_helm
    render "$@"
    ;;
  json)
    # The rendered objects as one JSON array (test/deploy/helm-chart.int-spec.ts reads it).
    shift
    ensure_helm
    ensure_validator
    render "$@" | "$venv/bin/python" -c 'import json, sys, yaml; print(json.dumps([o for o in yaml.safe_load_all(sys.stdin) if o]))'
    ;;
  validate)
    shift
    ensure_validator
    ensure_crds
    validate "$@"
    ;;
  check)
    ensure_helm
    ensure_validator
    ensure_crds
    status=0
    bash "$root/scripts/helm-sync-ops.sh" --check || status=1
    out="$(mktemp -d "${TMPDIR:-/tmp}/sage-helm-check.XXXXXX")"
    trap 'rm -rf "$out"' EXIT
    manifests=()
    for set in "${VALUE_SETS[@]}"; do
      name="${set%%|*}"
      read -r -a args <<<"${set#*|}"
      echo "== $name: helm lint --strict, helm template"
      if ! "$helm" lint --strict --quiet "$chart" --namespace sage --kube-version "$KUBE_VERSION" "${args[@]}"; then
        status=1
        continue
      fi
      if render "${args[@]}" >"$out/$name.yaml"; then manifests+=("$out/$name.yaml"); else status=1; fi
    done
    echo "== validating ${#manifests[@]} rendered value sets (Kubernetes $KUBE_VERSION, strict)"
    validate --quiet-ok "${manifests[@]}" || status=1
    if [[ $status -eq 0 ]]; then echo "helm-check: ok"; else echo "helm-check: FAILED (above)" >&2; fi
    exit "$status"
    ;;
  *)
    fail "unknown mode \"$1\": use no argument, \"render ARGS...\", \"json ARGS...\" or \"validate FILE...\""
    ;;
esac
