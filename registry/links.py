"""Signed, expiring answer links: how an agency without an account answers a referral by email.

A link names one case, one referral and one purpose (accept, decline, done) and carries an expiry,
all under an HMAC-SHA256 signature. Changing any part breaks the signature, so a link cannot be
forged, stretched past its expiry, or pointed at another referral.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

PURPOSES = {"accept": "accepted", "decline": "rejected", "done": "completed"}


class LinkError(ValueError):
    """The link is not good: ``reason`` is forged, expired or malformed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Claim:
    case_ref: str
    referral_id: int
    purpose: str
    expires: dt.datetime

    @property
    def status(self) -> str:
        """The referral status this link answers with."""
        return PURPOSES[self.purpose]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(claim: Claim, secret: bytes) -> str:
    body = _b64(
        json.dumps(
            {"c": claim.case_ref, "r": claim.referral_id, "p": claim.purpose, "e": int(claim.expires.timestamp())},
            separators=(",", ":"),
        ).encode()
    )
    return f"{body}.{_b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())}"


def verify(token: str, secret: bytes, now: dt.datetime) -> Claim:
    """The claim of a genuine, unexpired link; raises ``LinkError`` otherwise."""
    body, _, signature = token.partition(".")
    try:
        expected = hmac.new(secret, body.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(signature)):
            raise LinkError("forged")
        data = json.loads(_unb64(body))
        claim = Claim(data["c"], int(data["r"]), data["p"], dt.datetime.fromtimestamp(int(data["e"]), dt.UTC))
    except LinkError:
        raise
    except (ValueError, KeyError, TypeError) as error:
        raise LinkError("malformed") from error
    if claim.purpose not in PURPOSES:
        raise LinkError("malformed")
    if now >= claim.expires:
        raise LinkError("expired")
    return claim


def load_secret(path: Path) -> bytes:
    """The installation's signing key, created on first use and readable by its owner only."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(secrets.token_bytes(32))
        path.chmod(0o600)
    return path.read_bytes()
