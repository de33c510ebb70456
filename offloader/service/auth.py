"""API tokens: 256 random bits, kept only as their SHA-256 digest.

Why not scrypt or PBKDF2 with a salt: slow salted hashes protect guessable secrets
(passwords). A 256-bit random token cannot be guessed or found in a dictionary, so a fast
hash protects it as well, and being deterministic it is found through an index instead of
by hashing the presented token against every stored salt. The lookup compares digests, never
the token itself, so its timing says nothing usable about any token: no extra constant-time
comparison is needed.
"""

import hashlib
import secrets

PREFIX = "offload_"   # makes leaked tokens recognisable to secret scanners and in logs


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
