"""DKIM signing of outgoing messages (RFC 6376, relaxed/relaxed; RFC 8463 for Ed25519).

Our own signer rather than dkimpy's `dkim.sign`: dkimpy does the RSA private-key
operation in pure Python (6-16 ms per message, the cap of DKIM-on dispatch), while OpenSSL
does it in ~0.26 ms. dkimpy stays the reference: the tests verify every signature made
here with `dkim.verify`. Sync and CPU-bound: run it off the event loop.

The key operation goes to the libcrypto (OpenSSL 3) that Python's hashlib and ssl load,
through ctypes, without the GIL for the RSA operation as in `cryptography`. Not through
`cryptography`: importing it adds ~11.6 MB to a worker's RSS (its own OpenSSL) for an
RSA-2048 signature within a few percent of ours (interleaved on a loaded machine, median
CPU a signature 557 and 571 us here, 532 and 549 there). It signs where no OpenSSL 3 is.
"""

from __future__ import annotations

import base64
import ctypes
import functools
import hashlib
import os
import re
import time
import weakref
from collections.abc import Callable
from typing import Any

# dkimpy's default list leaves out List-Unsubscribe-Post; RFC 8058 wants it signed.
SIGNED_HEADERS: tuple[bytes, ...] = (
    b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
    b"list-id", b"list-unsubscribe", b"list-unsubscribe-post", b"reply-to", b"cc",
)  # fmt: skip
# Listed once more in h= than present (RFC 6376 §8.15): the extra entry signs "no further
# instance", so a relay or forwarder that adds a second Subject, or a List-Unsubscribe to
# a message without one, breaks the signature instead of riding on it.
OVERSIGNED: frozenset[bytes] = frozenset(
    (b"from", b"subject", b"list-unsubscribe", b"list-unsubscribe-post")
)

# Only the runs that change (a tab, or two or more WSP): a lone space, the common case
# between words, is left alone instead of being replaced by itself thousands of times.
_WSP_RUN = re.compile(rb"\t[ \t]*| [ \t]+")
_SPACE_RUN = re.compile(rb"  +")
_LINE_END_SPACE = re.compile(rb" \r\n")
_BARE_LF = re.compile(rb"(?<!\r)\n")
_FIELD_SPLIT = re.compile(rb"\r\n(?![ \t])")  # a CRLF not followed by WSP ends a field
_MAX_LINE = 78  # RFC 5322's SHOULD; every line we write stays far below its 998 MUST


def canonical_body(body: bytes) -> bytes:
    """Relaxed body canonicalisation (RFC 6376 §3.4.4)."""
    if not body:
        return b""
    # Canonicalise the body as it travels: SMTP ends DATA with a CRLF, so a last line
    # without one gets it, and its trailing WSP is then stripped like any other line's.
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    # Every WSP run becomes one space: each tab a space, then each run of spaces one. The
    # pattern starts with a two-space literal, which the regex engine searches for in C;
    # one that can start at any space (`\t[ \t]*| [ \t]+`, as for headers) is tried at
    # every space of the body: 137 us for our 23 KB newsletter, against 22 us.
    if b"\t" in body:
        body = body.replace(b"\t", b" ")
    body = _SPACE_RUN.sub(b" ", body)
    # Runs are single spaces now, so line-end WSP is exactly " \r\n": one literal pass.
    # (A literal regex: ~10 us over 23 KB, bytes.replace ~17 us, its search being slow.)
    body = _LINE_END_SPACE.sub(b"\r\n", body)
    end = len(body)
    while body.endswith(b"\r\n", 0, end):
        end -= 2
    return body[: end + 2] if end else b""  # an all-empty body hashes as nothing


def canonical_header(name: bytes, value: bytes) -> bytes:
    """Relaxed header canonicalisation (RFC 6376 §3.4.2), without the final CRLF."""
    # Each pass only where it changes something (most values need neither): `in` is cheap.
    if b"\r\n" in value:
        value = value.replace(b"\r\n", b"")
    if b"\t" in value or b"  " in value:
        value = _WSP_RUN.sub(b" ", value)
    return name.rstrip(b" \t").lower() + b":" + value.strip(b" \t")


def _split(message: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """(name, raw value) of every header field in order, and the body."""
    head, sep, body = message.partition(b"\r\n\r\n")
    if not sep:  # no body at all
        head = head.removesuffix(b"\r\n")
    fields = []
    for field in _FIELD_SPLIT.split(head):
        name, colon, value = field.partition(b":")
        if not colon:
            raise ValueError(f"not a header field: {field[:60]!r}")
        fields.append((name, value))
    return fields, body


def _fold(
    tokens: list[bytes], line: bytes, done: tuple[bytes, ...] = ()
) -> tuple[list[bytes], bytes]:
    """Add tokens, each starting with a space or ':', to an open `line` after the full lines
    `done`, breaking lines before a token: the full lines and the line left open."""
    out = list(done)
    for token in tokens:
        if len(line) + len(token) > _MAX_LINE:
            out.append(line)
            line = b" " + token.lstrip(b" ")
        else:
            line += token
    return out, line


_RSA, _ED25519 = 6, 1087  # EVP_PKEY_RSA, EVP_PKEY_ED25519
_NO_PASSWORD = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                ctypes.c_void_p)(lambda *_: 0)  # fmt: skip


@functools.cache
def _libcrypto() -> Any:
    """OpenSSL 3's libcrypto, or None (then cryptography signs). A PyDLL: its short calls
    keep the GIL (a thread that lets go may wait behind the event loop to get it back);
    only `nogil_sign`, the RSA operation, lets go of it."""
    p, n, i = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
    for name in ("libcrypto.so.3", "libcrypto.3.dylib"):
        try:
            lib: Any = ctypes.PyDLL(name)
            protos = {
                "BIO_new_mem_buf": (p, [ctypes.c_char_p, i]), "BIO_free": (None, [p]),
                "PEM_read_bio_PrivateKey": (p, [p, p, p, p]), "EVP_PKEY_free": (None, [p]),
                "EVP_PKEY_get_base_id": (i, [p]), "EVP_PKEY_get_bits": (i, [p]),
                "EVP_PKEY_get_size": (i, [p]), "OBJ_nid2sn": (ctypes.c_char_p, [i]),
                "ERR_clear_error": (None, []),
                "EVP_MD_CTX_new": (p, []), "EVP_MD_CTX_free": (None, [p]), "EVP_sha256": (p, []),
                "EVP_DigestSignInit": (i, [p, p, p, p, p]),
                "EVP_DigestSign": (i, [p, ctypes.c_char_p, ctypes.POINTER(n), ctypes.c_char_p, n]),
            }  # fmt: skip
            for fn, (restype, argtypes) in protos.items():
                getattr(lib, fn).restype, getattr(lib, fn).argtypes = restype, argtypes
            lib.nogil_sign = ctypes.CDLL(name).EVP_DigestSign
            lib.nogil_sign.restype, lib.nogil_sign.argtypes = protos["EVP_DigestSign"]
            return lib
        except (OSError, AttributeError):  # not there, or not OpenSSL 3
            continue
    return None


def _load_libcrypto(
    lib: Any, pem: bytes, owner: object
) -> tuple[int, int, Callable[[bytes], bytes]]:
    """(key type, bits, sign) for a PEM private key: sign(data) is the raw signature."""
    bio = lib.BIO_new_mem_buf(pem, len(pem))
    key = lib.PEM_read_bio_PrivateKey(bio, None, _NO_PASSWORD, None)
    lib.BIO_free(bio)
    if not key:
        lib.ERR_clear_error()
        raise ValueError("the DKIM key is not a PEM private key without a password")
    weakref.finalize(owner, lib.EVP_PKEY_free, key).atexit = False  # exit frees it all
    kind, md = lib.EVP_PKEY_get_base_id(key), None
    if kind == _RSA:
        md = lib.EVP_sha256()  # RSA's default padding is PKCS #1 v1.5, what DKIM wants

    room = lib.EVP_PKEY_get_size(key)  # the largest signature the key makes

    def sign(data: bytes) -> bytes:
        ctx, out, size = (
            lib.EVP_MD_CTX_new(),
            ctypes.create_string_buffer(room),
            ctypes.c_size_t(room),
        )
        try:
            ok = lib.EVP_DigestSignInit(ctx, None, md, None, key) == 1
            if not (ok and lib.nogil_sign(ctx, out, ctypes.byref(size), data, len(data)) == 1):
                lib.ERR_clear_error()
                raise ValueError("OpenSSL could not sign with the DKIM key")
        finally:
            lib.EVP_MD_CTX_free(ctx)
        return out.raw[: size.value]

    return kind, lib.EVP_PKEY_get_bits(key), sign


def _load_cryptography(pem: bytes) -> tuple[int, int, Callable[[bytes], bytes]]:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

    key = serialization.load_pem_private_key(pem, password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        pad, sha = padding.PKCS1v15(), hashes.SHA256()
        return _RSA, key.key_size, lambda data: key.sign(data, pad, sha)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return _ED25519, 256, key.sign
    return -1, 0, lambda data: b""


class DkimSigner:
    """Signs messages for one domain and selector with an RSA or Ed25519 private key."""

    def __init__(self, *, domain: str, selector: str, private_key_pem: bytes):
        self.domain = domain.encode("ascii")
        self.selector = selector.encode("ascii")
        lib = _libcrypto()
        if lib is not None:
            kind, bits, self._sign_raw = _load_libcrypto(lib, private_key_pem, self)
        else:
            kind, bits, self._sign_raw = _load_cryptography(private_key_pem)
        if kind == _RSA:
            if bits < 1024:  # RFC 8301: verifiers reject anything shorter
                raise ValueError(f"RSA key of {bits} bits: DKIM needs 1024 or more")
            self.algorithm = b"rsa-sha256"
        elif kind == _ED25519:
            self.algorithm = b"ed25519-sha256"
        else:
            name = lib.OBJ_nid2sn(kind).decode() if lib and kind > 0 else "this kind of key"
            raise ValueError(f"DKIM signs with RSA or Ed25519 keys, not {name}")
        self._start: tuple[Any, tuple[bytes, ...], bytes] = (None, (), b"")
        self._last_body: tuple[bytes | None, bytes] = (None, b"")

    def sign(self, message: bytes, *, crlf: bool = False) -> bytes:
        """The message with a DKIM-Signature header prepended (relaxed/relaxed).

        `crlf`: the caller vouches the message has no bare LF (the dispatcher's renderer
        writes CRLF only), which spares two scans of it (~28 us for 23 KB).
        """
        # Sign, and return, the CRLF form that SMTP puts on the wire (count() is a C scan).
        wire = message
        if not crlf and message.count(b"\n") != message.count(b"\r\n"):
            wire = _BARE_LF.sub(b"\r\n", message)
        fields, body = _split(wire)
        # One body hash per body: an issue without per-recipient content sends the same
        # body to everyone, and comparing it with the last one (a memcmp, which stops at
        # the first difference of a personalised body) costs far less than hashing it.
        last_body, body_hash = self._last_body
        if body != last_body:
            body_hash = base64.b64encode(hashlib.sha256(canonical_body(body)).digest())
            self._last_body = (body, body_hash)  # one tuple, swapped whole (shared by threads)

        by_name: dict[bytes, list[bytes]] = {}
        for name, value in fields:
            by_name.setdefault(name.rstrip(b" \t").lower(), []).append(value)
        names: list[bytes] = []
        signed: list[bytes] = []
        for name in SIGNED_HEADERS:
            values = by_name.get(name)
            if values:
                # Bottom-up (RFC 6376 §5.4.2): the first h= entry of a name signs its last
                # instance, the next one the instance above, and past the top nothing.
                signed.extend(canonical_header(name, v) + b"\r\n" for v in reversed(values))
                names.extend([name] * len(values))
            if name in OVERSIGNED:
                names.append(name)

        start, line = self._head_start(int(time.time()), tuple(names))
        full, line = _fold([b" bh=" + body_hash + b";"], line, start)
        head = (
            b"\r\n".join([*full, line]) + b"\r\n b="
        )  # b= on its own line: its folding moves no tag
        # The signature covers its own header with b= empty, as a verifier rebuilds it.
        data = b"".join(signed) + canonical_header(*head.split(b":", 1))
        if self.algorithm == b"rsa-sha256":
            sig = self._sign_raw(data)
        else:  # RFC 8463: PureEdDSA over the SHA-256 of the data, not over the data
            sig = self._sign_raw(hashlib.sha256(data).digest())
        b = base64.b64encode(sig)
        first, rest = _MAX_LINE - len(b" b="), _MAX_LINE - len(b" ")
        lines = [b[:first], *(b[i : i + rest] for i in range(first, len(b), rest))]
        return head + b"\r\n ".join(lines) + b"\r\n" + wire

    def _head_start(self, stamp: int, names: tuple[bytes, ...]) -> tuple[tuple[bytes, ...], bytes]:
        """The DKIM-Signature header folded up to bh=: its full lines and the line left open.

        The same for every message signed in one second with the same header names, so
        the last one is kept (one tuple, swapped whole: signing threads may share it).
        """
        key, done, line = self._start
        if key == (stamp, names):
            return done, line
        tags = [b" v=1;", b" a=" + self.algorithm + b";", b" c=relaxed/relaxed;",
                b" d=" + self.domain + b";", b" s=" + self.selector + b";",
                b" t=%d;" % stamp]  # fmt: skip
        # h= may fold around its colons (RFC 6376 §3.5 grammar), so it never makes a long line.
        h = [b" h=" + names[0], *(b":" + n for n in names[1:])]
        h[-1] += b";"
        out, line = _fold([*tags, *h], b"DKIM-Signature:")
        self._start = ((stamp, names), tuple(out), line)
        return self._start[1], line


def signer_from_settings(settings: Any) -> DkimSigner | None:
    """A signer when TIDINGS_DKIM_DOMAIN, _SELECTOR and _KEY_FILE are all set, else None."""
    if not (settings.dkim_domain and settings.dkim_selector and settings.dkim_key_file):
        return None
    path = os.fspath(settings.dkim_key_file)
    return _signer(settings.dkim_domain, settings.dkim_selector, path, os.stat(path).st_mtime_ns)


# Loading an RSA key costs ~30 ms (cryptography checks it), more than signing, and callers
# such as issues/compose.py ask for a signer per message. The mtime in the key picks up a
# rotated key file without a restart.
@functools.lru_cache(maxsize=8)
def _signer(domain: str, selector: str, path: str, mtime_ns: int) -> DkimSigner:
    with open(path, "rb") as f:
        return DkimSigner(domain=domain, selector=selector, private_key_pem=f.read())
