#!/usr/bin/env bash
# Makes a private CA and one certificate per host name, for TLS on host links (docs/security.md).
# For tests and trials: a real deployment uses its own CA and keeps ca.key offline.
# Usage: scripts/make-test-certs.sh DIR NAME...
#   DIR/ca.pem, DIR/ca.key            the CA (give ca.pem to every host: --tls-ca)
#   DIR/NAME.pem, DIR/NAME.key        one host's certificate and key (--tls-cert, --tls-key)
# Keys are EC P-256, mode 0600; certificates last 30 days; each NAME is also the certificate's
# subjectAltName (DNS), and IP:127.0.0.1 is added for loopback trials.
set -euo pipefail
if (($# < 2)); then
  echo "usage: $0 DIR NAME..." >&2
  exit 2
fi
dir="$1"
shift
command -v openssl >/dev/null || {
  echo "make-test-certs: openssl is not installed (apt-get install openssl)" >&2
  exit 1
}
mkdir -p "$dir"
umask 077
if [[ ! -f "$dir/ca.pem" ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=galaxies test CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
fi
for name in "$@"; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=$name" -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' "$name" \
    >"$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 30 -extfile "$dir/$name.ext" -out "$dir/$name.pem" 2>/dev/null
  rm -f "$dir/$name.csr" "$dir/$name.ext"
done
chmod 600 "$dir"/*.key
chmod 644 "$dir"/*.pem
