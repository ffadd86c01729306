"""Encryption of channel credentials at rest (Fernet: AES-128-CBC + HMAC-SHA256)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken


class SecretsBox:
    """Encrypts and decrypts JSON documents with a key derived from the secret key."""

    def __init__(self, secret_key: bytes) -> None:
        derived = hashlib.sha256(b"postroom-credentials:" + secret_key).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, document: dict[str, Any]) -> str:
        """Encrypt a JSON-serialisable document."""
        return self._fernet.encrypt(json.dumps(document).encode()).decode()

    def open(self, token: str | None) -> dict[str, Any]:
        """Decrypt a sealed document; an empty dict for None."""
        if not token:
            return {}
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise ValueError("credentials cannot be decrypted with this secret key") from exc
