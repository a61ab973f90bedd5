"""Encryption of personal data at rest (Fernet) and keyed hashes for look-up."""

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
    """

    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise DataKeyError("DATA_KEY is empty")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in parts])
        except (ValueError, TypeError) as exc:
            raise DataKeyError("DATA_KEY must be Fernet keys (32 url-safe base64 bytes)") from exc
        # The look-up key stays tied to the oldest key so that hashes survive a rotation.
        self._hash_key = hashlib.sha256(b"burgernet-lookup:" + base64.urlsafe_b64decode(parts[-1])).digest()

    def encrypt(self, value: str) -> str:
        """Encrypt a value for storage."""
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        """Decrypt a stored value."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
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


def new_data_key() -> str:
    """A fresh random Fernet key."""
    return Fernet.generate_key().decode()


def load_or_create_key(path: Path) -> str:
    """The development key kept in a file beside the database, made on first use."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = new_data_key()
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key
