#!/usr/bin/env bash
# Creates (or updates) the Secrets the Kubernetes manifests name, from the
# same .env docker compose reads (cp .env.example .env, fill it in). Each
# workload gets its own Secret, <name>-env, with only the keys it uses:
#   mart-db-owner, mart-db-<service>,  basic-auth, CloudNativePG sets the roles' passwords
#   mart-db-relay                      (mart_relay's: MART_RELAY_DB_PASSWORD)
#   mart-migrate-env                   MART_DATABASE_URL (the owner's): the Job alone
#   mart-outbox-relay-env              the relay role's password (relay_db_password)
#   mart-<handler>-env                 its service's database password (+ its provider keys)
#   mart-orders-expiry-env             the orders database password
#   mart-<service>-env (SpinApps)      its components' database passwords; users: the
#                                      token signing key and admin account; payments:
#                                      the Stripe and PayFast keys; orders: the providers
#   mart-keda-kafka                    KEDA's Kafka settings (its password is Strimzi's)
#   mart-kong-jwt                      Kong's JWT credential: the token public key
# Kafka passwords are not here: Strimzi's User Operator makes one Secret per
# KafkaUser. Refuses the fake payment provider and a template admin password.
# Usage: deploy/k8s/create-secrets.sh [.env] [namespace]   (needs kubectl)
set -euo pipefail
env_file=${1:-.env}
namespace=${2:-mart}
[ -f "$env_file" ] || { echo "no $env_file: cp .env.example .env and fill it in" >&2; exit 1; }
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a
services=(carts catalog inventory notifications orders payments users)

# Production never takes the fake provider (its test tokens pay for anything).
providers=",${MART_PAYMENT_PROVIDERS:-},"
case "${providers// /}" in
  *,fake,*)
    echo "MART_PAYMENT_PROVIDERS names \`fake\`: name stripe and/or payfast" >&2; exit 1 ;;
esac
# The admin password is at least 12 characters (stricter than the users'
# policy, 8, which the users component checks again at login, with the
# rest of it) and no template value (the component's rule: its letters and
# digits, lower-cased, hold no placeholder word).
if [ -n "${MART_ADMIN_PASSWORD:-}" ]; then
  lowered=$(printf '%s' "$MART_ADMIN_PASSWORD" | tr 'A-Z' 'a-z' | tr -cd '[:alnum:]')
  if [ "${#MART_ADMIN_PASSWORD}" -lt 12 ] || case "$lowered" in
    *changeme*|*replaceme*|*placeholder*|*yourpassword*) true ;; *) false ;; esac; then
    echo "MART_ADMIN_PASSWORD is shorter than 12 characters or a template value: set your own" >&2
    exit 1
  fi
fi

apply() { kubectl apply -n "$namespace" -f -; }
basic_auth() { # name username password
  kubectl create secret generic "$1" -n "$namespace" --type=kubernetes.io/basic-auth \
    --from-literal=username="$2" --from-literal=password="$3" --dry-run=client -o yaml | apply
}
# env_secret NAME VARIABLE...: Secret NAME with SPIN_VARIABLE_<VARIABLE> for
# each, from MART_<VARIABLE> (or MART_<SERVICE>_DB_PASSWORD) in .env.
env_secret() {
  local name=$1 args=() var
  shift
  for var in "$@"; do
    case "$var" in
      MART_DATABASE_URL) args+=(--from-literal="MART_DATABASE_URL=$owner_url") ;;
      *) local from="MART_$var"; args+=(--from-literal="SPIN_VARIABLE_$var=${!from:-}") ;;
    esac
  done
  kubectl create secret generic "$name" -n "$namespace" "${args[@]}" --dry-run=client -o yaml | apply
}

kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f -
basic_auth mart-db-owner "${MART_DB_USER:-mart}" "${MART_DB_PASSWORD:?}"
for s in "${services[@]}"; do
  var="MART_${s^^}_DB_PASSWORD"
  basic_auth "mart-db-$s" "mart_$s" "${!var:?set $var in $env_file}"
done
basic_auth mart-db-relay mart_relay "${MART_RELAY_DB_PASSWORD:?set MART_RELAY_DB_PASSWORD in $env_file}"
owner_url="postgres://${MART_DB_USER:-mart}:${MART_DB_PASSWORD}@mart-pg-rw:5432/postgres"
: "${MART_JWT_PRIVATE_KEY:?}" "${MART_JWT_PUBLIC_KEY:?}"

# The owner's credentials: the migrations Job only. The outbox relay
# connects as mart_relay (outboxes and processed events only).
env_secret mart-migrate-env MART_DATABASE_URL
env_secret mart-outbox-relay-env RELAY_DB_PASSWORD
# The Kafka handlers and the timer.
env_secret mart-carts-events-env CARTS_DB_PASSWORD
env_secret mart-inventory-events-env INVENTORY_DB_PASSWORD
env_secret mart-notifications-events-env NOTIFICATIONS_DB_PASSWORD NOTIFICATION_API_KEY
env_secret mart-orders-events-env ORDERS_DB_PASSWORD
env_secret mart-payments-events-env PAYMENTS_DB_PASSWORD STRIPE_SECRET_KEY \
  PAYFAST_MERCHANT_ID PAYFAST_MERCHANT_KEY PAYFAST_PASSPHRASE \
  PAYFAST_NOTIFY_URL PAYFAST_RETURN_URL PAYFAST_CANCEL_URL
env_secret mart-orders-expiry-env ORDERS_DB_PASSWORD
# The HTTP services (SpinApps); a chained component's database comes along.
env_secret mart-catalog-env CATALOG_DB_PASSWORD JWT_PUBLIC_KEY
env_secret mart-users-env USERS_DB_PASSWORD JWT_PRIVATE_KEY JWT_PUBLIC_KEY ADMIN_EMAIL ADMIN_PASSWORD
env_secret mart-inventory-env INVENTORY_DB_PASSWORD JWT_PUBLIC_KEY
env_secret mart-carts-env CARTS_DB_PASSWORD CATALOG_DB_PASSWORD INVENTORY_DB_PASSWORD JWT_PUBLIC_KEY
env_secret mart-orders-env ORDERS_DB_PASSWORD CATALOG_DB_PASSWORD CARTS_DB_PASSWORD \
  INVENTORY_DB_PASSWORD JWT_PUBLIC_KEY PAYMENT_PROVIDERS
env_secret mart-payments-env PAYMENTS_DB_PASSWORD JWT_PUBLIC_KEY STRIPE_SECRET_KEY \
  STRIPE_WEBHOOK_SECRET PAYFAST_MERCHANT_ID PAYFAST_MERCHANT_KEY PAYFAST_PASSPHRASE \
  PAYFAST_NOTIFY_URL PAYFAST_RETURN_URL PAYFAST_CANCEL_URL
env_secret mart-notifications-env NOTIFICATIONS_DB_PASSWORD JWT_PUBLIC_KEY

# KEDA's Kafka scaler: SCRAM-SHA-512 over TLS as KafkaUser mart-keda.
kubectl create secret generic mart-keda-kafka -n "$namespace" \
  --from-literal=sasl=scram_sha512 --from-literal=tls=enable --from-literal=username=mart-keda \
  --dry-run=client -o yaml | apply

# Kong finds the credential by the tokens' `iss` (jwt_issuer, `mart`).
kubectl create secret generic mart-kong-jwt -n "$namespace" \
  --from-literal=key=mart --from-literal=algorithm=ES256 \
  --from-literal=rsa_public_key="${MART_JWT_PUBLIC_KEY:?}" --dry-run=client -o yaml \
  | kubectl label --local -f - konghq.com/credential=jwt -o yaml | apply
echo "secrets in namespace $namespace: mart-db-owner, mart-db-<service>, mart-db-relay, <workload>-env, mart-keda-kafka, mart-kong-jwt" >&2
