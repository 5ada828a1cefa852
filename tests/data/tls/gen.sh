#!/bin/sh
# Regenerates the TLS test fixtures in this folder (see README.md).
# Needs the openssl CLI (3.x). Writes into the directory holding this script.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

# Two unrelated CAs: ca.pem signs every leaf, other-ca.pem signs nothing.
for c in ca other-ca; do
    key "$c.key"
    openssl req -new -x509 -key "$c.key" -out "$c.pem" -days 36500 -sha256 \
        -subj "/O=airlock tests/CN=airlock test $c" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign"
done

# leaf NAME SAN [extra openssl-x509 args...]
leaf() {
    name=$1; san=$2; shift 2
    key "$name.key"
    openssl req -new -key "$name.key" -out "$tmp/$name.csr" -subj "/O=airlock tests/CN=$name"
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
        "$san" > "$tmp/$name.ext"
    openssl x509 -req -in "$tmp/$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
        -CAserial "$tmp/ca.srl" -sha256 -extfile "$tmp/$name.ext" -out "$name.pem" "$@"
}

leaf server "DNS:localhost,IP:127.0.0.1,IP:::1" -days 36500
leaf wronghost "DNS:wrong.example.com" -days 36500
# wildcard.pem: a partial wildcard (RFC 6125 §6.4.3 lets clients refuse it)
# and a whole-label one.
leaf wildcard "DNS:db*.example.com,DNS:*.svc.example.com" -days 36500

# expired.pem: same names as server.pem but valid only during 2001-2002.
# `openssl x509 -req` cannot back-date, so this one goes through `openssl ca`.
key expired.key
openssl req -new -key expired.key -out "$tmp/expired.csr" -subj "/O=airlock tests/CN=expired"
mkdir "$tmp/ca"
: > "$tmp/ca/index.txt"
echo 1000 > "$tmp/ca/serial"
cat > "$tmp/ca.cnf" <<CNF
[ ca ]
default_ca = test
[ test ]
dir = $tmp/ca
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir
default_md = sha256
policy = any
copy_extensions = none
x509_extensions = leaf
[ any ]
organizationName = optional
commonName = supplied
[ leaf ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
CNF
openssl ca -batch -notext -config "$tmp/ca.cnf" -cert ca.pem -keyfile ca.key \
    -startdate 20010101000000Z -enddate 20020101000000Z \
    -in "$tmp/expired.csr" -out expired.pem

# server-enc.key: server.key under a passphrase ("airlock"); the engine must
# refuse it without prompting on the terminal.
openssl pkey -in server.key -aes-256-cbc -passout pass:airlock -out server-enc.key
