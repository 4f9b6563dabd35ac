#!/usr/bin/env bash
# Creates (or updates) the Secrets the Kubernetes manifests name, from the
# same .env docker compose reads (cp .env.example .env, fill it in):
#   mart-db-owner, mart-db-<service>   basic-auth, CloudNativePG sets the roles' passwords
#   mart-app                           the app's secret variables (SPIN_VARIABLE_*), MART_DATABASE_URL
#   mart-kong-jwt                      Kong's JWT credential: the token public key
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

apply() { kubectl apply -n "$namespace" -f -; }
basic_auth() { # name username password
  kubectl create secret generic "$1" -n "$namespace" --type=kubernetes.io/basic-auth \
    --from-literal=username="$2" --from-literal=password="$3" --dry-run=client -o yaml | apply
}

kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f -
basic_auth mart-db-owner "${MART_DB_USER:-mart}" "${MART_DB_PASSWORD:?}"
app=(--from-literal=MART_DATABASE_URL="postgres://${MART_DB_USER:-mart}:${MART_DB_PASSWORD}@mart-pg-rw:5432/postgres")
for s in "${services[@]}"; do
  var="MART_${s^^}_DB_PASSWORD"
  basic_auth "mart-db-$s" "mart_$s" "${!var:?set $var in $env_file}"
  app+=(--from-literal="SPIN_VARIABLE_${s^^}_DB_PASSWORD=${!var}")
done
app+=(--from-literal=SPIN_VARIABLE_PG_PASSWORD="$MART_DB_PASSWORD")
for name in JWT_PRIVATE_KEY JWT_PUBLIC_KEY ADMIN_EMAIL ADMIN_PASSWORD PAYMENT_PROVIDERS \
  STRIPE_SECRET_KEY STRIPE_WEBHOOK_SECRET PAYFAST_MERCHANT_ID PAYFAST_MERCHANT_KEY \
  PAYFAST_PASSPHRASE PAYFAST_NOTIFY_URL PAYFAST_RETURN_URL PAYFAST_CANCEL_URL NOTIFICATION_API_KEY; do
  var="MART_$name"
  app+=(--from-literal="SPIN_VARIABLE_$name=${!var:-}")
done
kubectl create secret generic mart-app -n "$namespace" "${app[@]}" --dry-run=client -o yaml | apply

# Kong finds the credential by the tokens' `iss` (jwt_issuer, `mart`).
kubectl create secret generic mart-kong-jwt -n "$namespace" \
  --from-literal=key=mart --from-literal=algorithm=ES256 \
  --from-literal=rsa_public_key="${MART_JWT_PUBLIC_KEY:?}" --dry-run=client -o yaml \
  | kubectl label --local -f - konghq.com/credential=jwt -o yaml | apply
echo "secrets in namespace $namespace: mart-db-owner, mart-db-<service>, mart-app, mart-kong-jwt" >&2
