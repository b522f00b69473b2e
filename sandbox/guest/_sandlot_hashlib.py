"""``hashlib.pbkdf2_hmac`` where the interpreter was built without OpenSSL (the WASI guests).

Python has offered PBKDF2 only through OpenSSL since 3.12, so password-hashing code fails
with ``AttributeError`` in a guest whose ``hashlib`` has none. :func:`install` adds PBKDF2
(RFC 8018, section 5.2) over ``hashlib.new``, which has the algorithms python builds in
(md5, sha1, the sha2 and sha3 families, blake2): the same bytes as python's, slower
(0.28 s for 100,000 iterations of SHA-256 on the data-stack guest). ``hashlib.scrypt``
stays absent (it needs more memory and time than a pure-Python version can give).
"""

from __future__ import annotations

import hashlib
from typing import Any

_INNER = bytes(x ^ 0x36 for x in range(256))
_OUTER = bytes(x ^ 0x5C for x in range(256))


def install() -> None:
    if not hasattr(hashlib, "pbkdf2_hmac"):
        hashlib.pbkdf2_hmac = pbkdf2_hmac
        hashlib.__all__ = (*hashlib.__all__, "pbkdf2_hmac")


def pbkdf2_hmac(
    hash_name: str, password: Any, salt: Any, iterations: int, dklen: int | None = None
) -> bytes:
    """Password-based key derivation, as ``hashlib.pbkdf2_hmac`` documents it."""
    password, salt = memoryview(password).tobytes(), memoryview(salt).tobytes()
    inner, outer = hashlib.new(hash_name), hashlib.new(hash_name)
    block = inner.block_size
    if len(password) > block:
        password = hashlib.new(hash_name, password).digest()
    password = password.ljust(block, b"\0")
    inner.update(password.translate(_INNER))
    outer.update(password.translate(_OUTER))
    if iterations < 1:
        raise ValueError(iterations)
    size = outer.digest_size
    if dklen is None:
        dklen = size
    if dklen < 1:
        raise ValueError(dklen)

    def prf(message: bytes) -> bytes:
        first, second = inner.copy(), outer.copy()
        first.update(message)
        second.update(first.digest())
        return second.digest()

    key = bytearray()
    counter = 1
    while len(key) < dklen:
        previous = prf(salt + counter.to_bytes(4, "big"))
        total = int.from_bytes(previous)
        for _ in range(iterations - 1):
            previous = prf(previous)
            total ^= int.from_bytes(previous)
        key += total.to_bytes(size)
        counter += 1
    return bytes(key[:dklen])
