#!/usr/bin/env python3
"""The partner's side of Portcullis payload protection (docs/payloads.md), in Python with the
`cryptography` package only (Debian: python3-cryptography; pip: cryptography). No JOSE library.

  export PORTCULLIS_SECRET=...           # the app's secret
  python3 payloads.py derive KEY_ID                      # the three keys, hex
  curl -s ... | python3 payloads.py decrypt KEY_ID        # an `encrypt response` body -> plaintext
  python3 payloads.py decrypt KEY_ID --private-key partner.pem < body   # `to app.public-key`
  python3 payloads.py encrypt KEY_ID [CONTENT_TYPE] < plaintext          # a `decrypt request` body
  curl -s -D head.txt -o body.bin ...
  python3 payloads.py verify KEY_ID METHOD URL head.txt body.bin [REQUEST_SIGNATURE_HEADER]
"""
import base64
import hashlib
import hmac
import json
import os
import re
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def derive_key(secret: str, key_id: str, purpose: str) -> bytes:
    """HKDF-SHA256: IKM = the secret (UTF-8), empty salt, info = "portcullis <purpose> v1 <key id>", 32 bytes.
    purpose: "response", "request" or "response-signature"."""
    info = f"portcullis {purpose} v1 {key_id}".encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"", info=info).derive(secret.encode())


def _concat_kdf(shared: bytes, alg: str, bits: int, apu: bytes, apv: bytes) -> bytes:
    # RFC 7518 §4.6.2 (one round of SHA-256 gives the 256 bits A256KW needs).
    def field(b: bytes) -> bytes:
        return len(b).to_bytes(4, "big") + b

    other = field(alg.encode()) + field(apu) + field(apv) + bits.to_bytes(4, "big")
    return hashlib.sha256((1).to_bytes(4, "big") + shared + other).digest()[: bits // 8]


def decrypt_response(jwe: str, response_key: bytes = None, private_key=None):
    """An `encrypt response` body -> (plaintext, content type or None). dir + A256GCM with the
    response key, or RSA-OAEP-256 / ECDH-ES+A256KW with the partner's private key."""
    protected, encrypted_key, iv, ciphertext, tag = jwe.strip().split(".")
    header = json.loads(unb64url(protected))
    if header.get("enc") != "A256GCM":
        raise ValueError("unexpected enc " + str(header.get("enc")))
    alg = header.get("alg")
    if alg == "dir" and response_key is not None and encrypted_key == "":
        cek = response_key
    elif alg == "RSA-OAEP-256" and isinstance(private_key, rsa.RSAPrivateKey):
        oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
        cek = private_key.decrypt(unb64url(encrypted_key), oaep)
    elif alg == "ECDH-ES+A256KW" and isinstance(private_key, (ec.EllipticCurvePrivateKey, x25519.X25519PrivateKey)):
        epk = header["epk"]
        if epk["kty"] == "OKP":
            shared = private_key.exchange(x25519.X25519PublicKey.from_public_bytes(unb64url(epk["x"])))
        else:
            x, y = (int.from_bytes(unb64url(epk[c]), "big") for c in ("x", "y"))
            peer = ec.EllipticCurvePublicNumbers(x, y, private_key.curve).public_key()
            shared = private_key.exchange(ec.ECDH(), peer)
        kek = _concat_kdf(shared, alg, 256, unb64url(header.get("apu", "")), unb64url(header.get("apv", "")))
        cek = aes_key_unwrap(kek, unb64url(encrypted_key))
    else:
        raise ValueError("unexpected alg " + str(alg) + " for the key given")
    # The additional authenticated data is the protected header as received (RFC 7516 §5.2).
    plain = AESGCM(cek).decrypt(unb64url(iv), unb64url(ciphertext) + unb64url(tag), protected.encode())
    return plain, header.get("cty")


def encrypt_request(plaintext: bytes, request_key: bytes, key_id: str, content_type: str = None) -> str:
    """A body for a `decrypt request` route (send it with Content-Type: application/jose)."""
    header = {"alg": "dir", "enc": "A256GCM", "kid": key_id}
    if content_type:
        header["cty"] = content_type
    protected = b64url(json.dumps(header, separators=(",", ":")).encode())
    iv = os.urandom(12)
    sealed = AESGCM(request_key).encrypt(iv, plaintext, protected.encode())
    return ".".join([protected, "", b64url(iv), b64url(sealed[:-16]), b64url(sealed[-16:])])


def verify_response(status: int, headers: dict, body: bytes, method: str, url: str, signature_key: bytes,
                    key_id: str, request_signature: str = None, max_age: int = 300):
    """A `sign response` answer. headers: lower-case name -> value. request_signature: the
    Signature header the request carried, when it was signed. Returns None when all is well."""
    m = re.fullmatch(r"sig1=(\(([^)]*)\)(.*))", headers.get("signature-input", ""))
    s = re.search(r"(?:^|,\s*)sig1=:([A-Za-z0-9+/=]*):", headers.get("signature", ""))
    if not m or not s:
        return "no sig1 signature"
    params, covered, rest = m.groups()
    if f';keyid="{key_id}"' not in rest or ';alg="hmac-sha256"' not in rest:
        return "wrong keyid or alg"
    created = re.search(r";created=(\d+)", rest)
    if not created or abs(time.time() - int(created.group(1))) > max_age:
        return "created is missing or too old"
    digest = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"
    if headers.get("content-digest") != digest:
        return "the body does not match Content-Digest"
    ids = covered.split()
    label = re.match(r"([a-z*][a-z0-9_\-.*]*)=", request_signature).group(1) if request_signature else None
    required = ['"@status"', '"content-digest"', '"@method";req', '"@target-uri";req']
    if "content-type" in headers:
        required.append('"content-type"')
    if label:
        required.append(f'"signature";req;key="{label}"')
    for r in required:
        if r not in ids:
            return "the signature does not cover " + r
    lines = []
    for i in ids:
        if i == '"@status"':
            value = str(status)
        elif i == '"@method";req':
            value = method.upper()
        elif i == '"@target-uri";req':
            value = url
        elif label and i == f'"signature";req;key="{label}"':
            member = re.search(r"(?:^|,\s*)" + re.escape(label) + r"=(:[^:]*:)", request_signature)
            value = member.group(1) if member else None
        elif re.fullmatch(r'"[a-z0-9-]+"', i):
            value = headers.get(i[1:-1])
        else:
            value = None
        if value is None:
            return "cannot rebuild " + i
        lines.append(f"{i}: {value}")
    lines.append(f'"@signature-params": {params}')
    mac = hmac.new(signature_key, "\n".join(lines).encode("latin-1"), hashlib.sha256).digest()
    return None if hmac.compare_digest(mac, base64.b64decode(s.group(1))) else "the signature does not verify"


def _headers_of(dump: str):
    """The last response head of a `curl -D` dump -> (status, {lower-case name: value})."""
    heads = [h for h in re.split(r"\r?\n\r?\n", dump) if h.startswith("HTTP/")]
    lines = heads[-1].splitlines()
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
    return int(lines[0].split()[1]), headers


def main(argv):
    secret = os.environ.get("PORTCULLIS_SECRET", "")
    command, key_id = argv[1], argv[2]
    if command == "derive":
        for purpose in ("response", "request", "response-signature"):
            print(purpose, derive_key(secret, key_id, purpose).hex())
    elif command == "decrypt":
        if len(argv) > 4 and argv[3] == "--private-key":
            with open(argv[4], "rb") as f:
                key = serialization.load_pem_private_key(f.read(), password=None)
            plain, cty = decrypt_response(sys.stdin.read(), private_key=key)
        else:
            plain, cty = decrypt_response(sys.stdin.read(), response_key=derive_key(secret, key_id, "response"))
        print(f"content-type: {cty}", file=sys.stderr)
        sys.stdout.buffer.write(plain)
    elif command == "encrypt":
        content_type = argv[3] if len(argv) > 3 else None
        print(encrypt_request(sys.stdin.buffer.read(), derive_key(secret, key_id, "request"), key_id, content_type), end="")
    elif command == "verify":
        method, url, head_file, body_file = argv[3:7]
        with open(head_file) as f:
            status, headers = _headers_of(f.read())
        with open(body_file, "rb") as f:
            body = f.read()
        problem = verify_response(status, headers, body, method, url, derive_key(secret, key_id, "response-signature"),
                                  key_id, argv[7] if len(argv) > 7 else None)
        print(problem or "ok")
        return 1 if problem else 0
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
