#!/bin/sh
# Print katascope-rules.yml wrapped in a PrometheusRule, for clusters whose
# Prometheus is run by the Prometheus Operator:
#   deploy/prometheus/prometheusrule.sh [NAMESPACE] | kubectl apply -f -
# The namespace defaults to katascope. Your Prometheus resource's
# ruleSelector must match the object's labels (kube-prometheus-stack
# selects release=<release name> by default: add it with
#   deploy/prometheus/prometheusrule.sh | kubectl label --local -f - -o yaml release=NAME | kubectl apply -f -
# ). The rules file stays the one source; nothing here is copied by hand.
set -eu
rules="$(dirname "$0")/katascope-rules.yml"
ns="${1:-katascope}"
cat <<HEADER
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: katascope
  namespace: ${ns}
  labels:
    app.kubernetes.io/name: katascope
    app.kubernetes.io/part-of: katascope
spec:
HEADER
# Indent the whole file under spec: ("groups:" becomes spec.groups).
sed 's/^./  &/' "$rules"
