"""Credentials, the in-memory token store and header authentication (unknowns #10-12, #36)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from worker.sandbox import codes
from worker.sandbox.ids import new_token

_KEY_LENGTHS = (16, 24, 32)


class CredentialError(ValueError):
    """Startup credentials are unusable (the message never contains their values)."""


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


@dataclass(frozen=True)
class Credentials:
    """The one account the sandbox serves. ``repr`` hides the secrets."""

    api_key: str
    client_id: str | None = None
    client_secret: str | None = None

    def __repr__(self) -> str:
        return (
            f"Credentials(api_key=***, client_id={'set' if self.client_id else None}, "
            f"client_secret={'***' if self.client_secret else None})"
        )

    def validate(self) -> None:
        """Refuse an empty API key and wrong crypto lengths, naming the flag at fault."""
        if not self.api_key:
            raise CredentialError("--api-key is required (or HEADSWAP_SANDBOX_API_KEY)")
        if self.client_id is not None and len(self.client_id.encode("utf-8")) != 16:
            raise CredentialError(
                "--client-id must be exactly 16 bytes (it is the AES IV of webhooks), got "
                f"{len(self.client_id.encode('utf-8'))}"
            )
        if self.client_secret is not None and (
            len(self.client_secret.encode("utf-8")) not in _KEY_LENGTHS
        ):
            raise CredentialError(
                "--client-secret must be 16, 24 or 32 bytes (it is the AES key of webhooks), "
                f"got {len(self.client_secret.encode('utf-8'))}"
            )

    def secret_matches(self, given: str) -> bool:
        """getToken's ``clientSecret``: the client secret, or the API key (they are one value)."""
        candidates = [self.api_key] + ([self.client_secret] if self.client_secret else [])
        return any(_same(given, candidate) for candidate in candidates)

    def client_id_matches(self, given: str) -> bool:
        """getToken's ``clientId``: must equal ``--client-id`` when one is configured."""
        return bool(given) and (self.client_id is None or _same(given, self.client_id))

    def webhook_keys(self) -> tuple[str, str] | None:
        """``(client_id, secret)`` for sealing webhooks, or None when they cannot be sealed.

        The secret is ``--client-secret``, else the API key when its length is a valid AES
        key length. Without ``--client-id`` there is no IV, so no webhooks (unknown #36).
        """
        if self.client_id is None:
            return None
        if self.client_secret is not None:
            return self.client_id, self.client_secret
        if len(self.api_key.encode("utf-8")) in _KEY_LENGTHS:
            return self.client_id, self.api_key
        return None

    def webhook_warning(self) -> str | None:
        """A one-line explanation when webhooks cannot be delivered, else None."""
        if self.webhook_keys() is not None:
            return None
        if self.client_id is None:
            return "webhooks will be skipped: no --client-id (16 bytes) to use as the AES IV"
        return (
            "webhooks will be skipped: no --client-secret and the API key is not "
            "16, 24 or 32 bytes long"
        )


class TokenStore:
    """Issued tokens and their issue times (monotonic). Not locked: the engine's lock guards it."""

    def __init__(self) -> None:
        self._issued: dict[str, float] = {}

    def issue(self, now: float, wall_now: float) -> str:
        """Mint and remember a token issued at monotonic time ``now``."""
        token = new_token("sandbox", wall_now)
        self._issued[token] = now
        return token

    def valid(self, token: str, now: float, ttl: float) -> bool:
        """Known, not revoked and younger than ``ttl`` (the ttl in force at use time)."""
        issued = self._issued.get(token)
        return issued is not None and now - issued < ttl

    def revoke_all(self) -> int:
        """Forget every token; return how many there were."""
        count = len(self._issued)
        self._issued.clear()
        return count

    def __len__(self) -> int:
        return len(self._issued)


def authenticate(
    headers: Mapping[str, str], creds: Credentials, tokens: TokenStore, now: float, ttl: float
) -> int | None:
    """None when authorised, else 1102 (nothing sent) or 1101 (invalid or expired).

    ``Authorization`` wins when present: ``x-api-key`` is then ignored (unknown #10).
    """
    authorization = (headers.get("Authorization") or "").strip()
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not tokens.valid(token.strip(), now, ttl):
            return codes.AUTH_INVALID
        return None
    key = (headers.get("x-api-key") or "").strip()
    if not key:
        return codes.AUTH_MISSING
    return None if _same(key, creds.api_key) else codes.AUTH_INVALID
