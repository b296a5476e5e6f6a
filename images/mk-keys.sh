#!/bin/bash
# mk-keys.sh DIR
# Development signing material for RAUC bundles: a CA (the keyring the appliance trusts)
# and a signing certificate it issued. Kept if present, so bundles stay installable on
# images built earlier. Production keys never live here: see images/README.md.
set -euo pipefail
dir=$1
[ -f "$dir/signing.key.pem" ] && [ -f "$dir/ca.cert.pem" ] && exit 0
mkdir -p "$dir"
chmod 700 "$dir"
cd "$dir"
cat >openssl.cnf <<'CNF'
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_leaf]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key.pem -out ca.cert.pem \
    -days 3650 -subj "/O=Edge appliance development/CN=Edge development update CA" \
    -config openssl.cnf -extensions v3_ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout signing.key.pem -out signing.csr.pem \
    -subj "/O=Edge appliance development/CN=Edge development bundle signer" -config openssl.cnf 2>/dev/null
openssl x509 -req -in signing.csr.pem -CA ca.cert.pem -CAkey ca.key.pem -CAcreateserial -out signing.cert.pem \
    -days 1825 -extfile openssl.cnf -extensions v3_leaf 2>/dev/null
rm -f signing.csr.pem
chmod 600 ./*.key.pem
