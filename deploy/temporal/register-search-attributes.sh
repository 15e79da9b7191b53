#!/bin/sh
# Registers the custom search attributes AgentWorkflow upserts, so conversations can
# be listed by tenant, status, turns, tokens and cost:
#   temporal workflow list --query 'AgentTenant="acme" AND AgentCostUsd > 1'
# Run once by the temporal-admin-tools service of docker-compose.yml after the server
# is healthy; safe to run again (an attribute that exists is left as it is).
set -eu

: "${TEMPORAL_ADDRESS:=temporal:7233}"
: "${NAMESPACE:=default}"
ATTEMPTS=60

# name:type, one per attribute the workflow upserts.
SEARCH_ATTRIBUTES="AgentTenant:Keyword AgentStatus:Keyword AgentTurns:Int AgentTokens:Int AgentCostUsd:Double"

attempt=1
until temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE" >/dev/null 2>&1; do
  if [ "$attempt" -ge "$ATTEMPTS" ]; then
    echo "namespace $NAMESPACE not reachable on $TEMPORAL_ADDRESS" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
  sleep 2
done

existing=$(temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE")
for entry in $SEARCH_ATTRIBUTES; do
  name=${entry%%:*}
  type=${entry#*:}
  if printf '%s\n' "$existing" | grep -qw "$name"; then
    echo "search attribute $name exists"
    continue
  fi
  temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE" \
     --name "$name" --type "$type"
  echo "search attribute $name ($type) registered"
done
