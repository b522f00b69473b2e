"""Worker secrets at rest: encrypted with Fernet (AES-128-CBC + HMAC-SHA256, `cryptography`).

The keys come from ``SANDLOT_SECRETS_KEY`` (or the development key file): the first
encrypts, every one decrypts, so a key is rotated by putting a new one first and
keeping the old one until every worker has been uploaded again (or had a secret set):
both reseal the worker's secrets with the first key. Secret names stay
in clear (the API lists them); only values are sealed.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

__all__ = ["SecretBox", "SecretsUnreadable"]


class SecretsUnreadable(Exception):
    """A stored secret does not decrypt with any configured key."""


class SecretBox:
    """Seals and opens secret values with one or more Fernet keys (ValueError if malformed)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("a SecretBox needs at least one key")
        self._fernet = MultiFernet([Fernet(key.strip()) for key in keys])

    @classmethod
    def from_setting(cls, value: str) -> SecretBox:
        """Comma-separated keys, as ``SANDLOT_SECRETS_KEY`` holds them."""
        return cls([key for key in value.split(",") if key.strip()])

    def seal(self, values: dict[str, str]) -> dict[str, str]:
        return {
            name: self._fernet.encrypt(value.encode()).decode() for name, value in values.items()
        }

    def reseal(self, sealed: dict[str, str]) -> dict[str, str]:
        """The same values sealed with the first key (rotation). Raises SecretsUnreadable."""
        try:
            return {name: self._fernet.rotate(token).decode() for name, token in sealed.items()}
        except InvalidToken:
            raise SecretsUnreadable(
                "worker secrets don't decrypt with SANDLOT_SECRETS_KEY: restore the key they "
                "were sealed with (list it after a new key to rotate)"
            ) from None

    def open(self, sealed: dict[str, str]) -> dict[str, str]:
        """Raises SecretsUnreadable (naming no value) when a key is missing or wrong."""
        try:
            return {name: self._fernet.decrypt(token).decode() for name, token in sealed.items()}
        except InvalidToken:
            raise SecretsUnreadable(
                "worker secrets don't decrypt with SANDLOT_SECRETS_KEY: restore the key they "
                "were sealed with (list it after a new key to rotate)"
            ) from None
