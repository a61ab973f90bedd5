"""Encryption of personal data at rest (Fernet) and keyed hashes for look-up.

Two independent keys: `DATA_KEY` encrypts, `LOOKUP_KEY` keys the hashes that find a person (phone
number, chat id) and that keep an opt-out after the erasure. Either can be rotated without the other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class DataKeyError(Exception):
    """The data key is missing, malformed, or does not open a stored value."""


class DataVault:
    """Encrypts and decrypts personal data; hashes it for look-up without decrypting.

    `keys` is a comma-separated list of Fernet keys, newest first: the first encrypts, all decrypt,
    so `DATA_KEY` can be rotated by prepending a new key and re-encrypting at leisure.
    `lookup_keys` (LOOKUP_KEY) is likewise a list, newest first: the first keys every new hash, the
    others are still recognised until the re-hash job has moved the stored hashes to the first.
    Without it the hashes are keyed by the oldest data key, as before LOOKUP_KEY existed (development).
    """

    def __init__(self, keys: str, lookup_keys: str | None = None) -> None:
        parts = split_keys(keys)
        if not parts:
            raise DataKeyError("DATA_KEY is empty")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in parts])
        except (ValueError, TypeError) as exc:
            raise DataKeyError("DATA_KEY must be Fernet keys (32 url-safe base64 bytes)") from exc
        lookups = split_keys(lookup_keys) if lookup_keys is not None else parts[-1:]
        if not lookups:
            raise DataKeyError("LOOKUP_KEY is empty")
        self._hash_keys = tuple(_hash_key(k, name="LOOKUP_KEY") for k in lookups)
        self._hash_key = self._hash_keys[0]

    def encrypt(self, value: str) -> str:
        """Encrypt a value for storage."""
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str, *, ttl: int | None = None) -> str:
        """Decrypt a stored value (`ttl`: refused when encrypted more than that many seconds ago)."""
        try:
            return self._fernet.decrypt(token.encode(), ttl=ttl).decode()
        except InvalidToken as exc:
            raise DataKeyError("stored value cannot be decrypted with DATA_KEY") from exc

    def encrypt_bytes(self, data: bytes) -> str:
        """Encrypt a file (a tip's photo); the token is text, so key rotation treats it as any other."""
        return self._fernet.encrypt(data).decode()

    def decrypt_bytes(self, token: str) -> bytes:
        """Decrypt a stored file."""
        try:
            return self._fernet.decrypt(token.encode())
        except InvalidToken as exc:
            raise DataKeyError("stored value cannot be decrypted with DATA_KEY") from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt a stored value with the newest key."""
        return self._fernet.rotate(token.encode()).decode()

    def lookup_hash(self, value: str) -> str:
        """A keyed hash of a value (phone number, chat id) to find it without storing it in clear."""
        return hmac.new(self._hash_key, value.encode(), hashlib.sha256).hexdigest()

    def older_lookup_hashes(self, value: str) -> tuple[str, ...]:
        """The value's hashes under the older lookup keys still listed (empty outside a rotation)."""
        return tuple(hmac.new(k, value.encode(), hashlib.sha256).hexdigest() for k in self._hash_keys[1:])

    def lookup_hashes(self, value: str) -> tuple[str, ...]:
        """The value's hashes under every listed lookup key, newest first: what a stored hash may be."""
        return (self.lookup_hash(value), *self.older_lookup_hashes(value))

    @property
    def rehashing(self) -> bool:
        """Whether older lookup keys are listed, i.e. stored hashes may still need the re-hash."""
        return len(self._hash_keys) > 1


def split_keys(keys: str) -> list[str]:
    """A comma-separated key list as its keys, newest first."""
    return [k.strip() for k in keys.split(",") if k.strip()]


def _hash_key(key: str, *, name: str) -> bytes:
    # The derivation the oldest data key always had, so that LOOKUP_KEY set to that key keeps every
    # hash an installation stored before LOOKUP_KEY existed.
    try:
        raw = base64.urlsafe_b64decode(key.encode())
    except (ValueError, TypeError) as exc:
        raise DataKeyError(f"{name} must be keys of 32 url-safe base64 bytes") from exc
    if len(raw) != 32:
        raise DataKeyError(f"{name} must be keys of 32 url-safe base64 bytes")
    return hashlib.sha256(b"burgernet-lookup:" + raw).digest()


def new_data_key() -> str:
    """A fresh random Fernet key."""
    return Fernet.generate_key().decode()


def load_or_create_key(path: Path, *, initial: str | None = None) -> str:
    """A development key kept in a file beside the database, made on first use (`initial`, or new)."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = initial or new_data_key()
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key
