#!/usr/bin/env bash
# Posts one signed delivery to the quickstart's webhook connector, at
# TRIBUTARY_HTTP_ADDRESS (default 127.0.0.1:8080) like the sidecar.
set -euo pipefail
secret="${DEMO_WEBHOOK_SECRET:-quickstart-secret}"
id="${1:-A-1001}"
body='{"event":"order.placed","order":{"id":"'"$id"'","customer":"C-42","total":129.90,"currency":"EUR","lines":[{"sku":"KB-1","qty":1},{"sku":"MS-2","qty":2}]}}'
sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" | sed 's/^.* //')
curl -sS -X POST "http://${TRIBUTARY_HTTP_ADDRESS:-127.0.0.1:8080}/hooks/demo" \
  -H 'Content-Type: application/json' \
  -H "X-Delivery-Id: delivery-$id" \
  -H "X-Signature: sha256=$sig" \
  --data-binary "$body"
