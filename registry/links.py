"""Signed, expiring answer links: how an agency without an account answers a referral by email.

A link names one case, one referral and one purpose (accept, decline, done) and carries an expiry,
all under an HMAC-SHA256 signature. Changing any part breaks the signature, so a link cannot be
forged, stretched past its expiry, or pointed at another referral.

A token is ``<key id>.<claim>.<signature>``: the key id names the key that signed it, so that keys
can be rotated. The current key (``link-secret`` in the data dir) signs; older keys (files in
``link-secret.old/``) still verify the links they signed until they are deleted. A token has one
spelling only: the page re-encodes what it decoded and refuses any other spelling of the same bytes
(padding, the other base64 alphabet, case changes, whitespace), so a link cannot be varied to slip
past a per-link rate limit or a cache. Links from before key ids (``<claim>.<signature>``) verify
against every configured key until they expire.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

PURPOSES = {"accept": "accepted", "decline": "rejected", "done": "completed"}
# A signing key is 32 random bytes; anything shorter (an empty file, a typo) would make links guessable.
KEY_BYTES = 32
# Far longer than any claim; a longer path is refused before any work is done on it.
TOKEN_MAX = 512

_B64 = r"[A-Za-z0-9_-]"
# A key id is 8 lowercase hex digits; a SHA-256 MAC in unpadded base64url is 43 characters.
_TOKEN = re.compile(rf"(?:([0-9a-f]{{8}})\.)?({_B64}{{1,{TOKEN_MAX}}})\.({_B64}{{43}})")


class LinkError(ValueError):
    """The link is not good: ``reason`` is forged, expired or malformed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LinkKeyError(RuntimeError):
    """A signing key file cannot be used; the message names the file and says what to do."""


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


@dataclass(frozen=True)
class Keyring:
    """The key that signs new links and the older keys that still verify links already sent."""

    current: bytes
    older: tuple[bytes, ...] = field(default=())

    def by_id(self) -> dict[str, bytes]:
        keys = {key_id(key): key for key in self.older}
        keys[key_id(self.current)] = self.current
        return keys


def key_id(key: bytes) -> str:
    """A short public name of a key, derived from it so that it can never name the wrong file."""
    return hashlib.sha256(b"yeongye link key id\x00" + key).hexdigest()[:8]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, signed: str) -> bytes:
    return hmac.new(key, signed.encode(), hashlib.sha256).digest()


def _body(claim: Claim) -> str:
    data = {"c": claim.case_ref, "r": claim.referral_id, "p": claim.purpose, "e": int(claim.expires.timestamp())}
    return _b64(json.dumps(data, separators=(",", ":")).encode())


def _encode(claim: Claim, key: bytes, *, legacy: bool = False) -> str:
    body = _body(claim)
    if legacy:
        return f"{body}.{_b64(_mac(key, body))}"
    signed = f"{key_id(key)}.{body}"
    return f"{signed}.{_b64(_mac(key, signed))}"


def sign(claim: Claim, keys: bytes | Keyring) -> str:
    """The link token of ``claim``, signed with the current key."""
    return _encode(claim, keys.current if isinstance(keys, Keyring) else keys)


def verify(token: str, keys: bytes | Keyring, now: dt.datetime) -> Claim:
    """The claim of a genuine, unexpired link in its one canonical spelling; raises ``LinkError`` otherwise.

    The signature is checked (in constant time) before the claim is decoded, so nothing an outsider
    writes is parsed; then the claim is encoded again and must give back exactly the token received.
    """
    ring = keys if isinstance(keys, Keyring) else Keyring(keys)
    found = _TOKEN.fullmatch(token) if len(token) <= TOKEN_MAX + 60 else None
    if found is None:
        raise LinkError("malformed")
    kid, body, signature = found.groups()
    if kid is None:
        candidates, signed = [ring.current, *ring.older], body
    else:
        key = ring.by_id().get(kid)
        candidates, signed = ([key] if key is not None else []), f"{kid}.{body}"
    given = _unb64(signature)
    matching = [key for key in candidates if hmac.compare_digest(_mac(key, signed), given)]
    if not matching:
        raise LinkError("forged")
    try:
        data = json.loads(_unb64(body))
        case_ref, referral_id, purpose, expires = data["c"], data["r"], data["p"], data["e"]
        if not (isinstance(case_ref, str) and isinstance(purpose, str)):
            raise TypeError("case and purpose are text")
        if type(referral_id) is not int or type(expires) is not int:
            raise TypeError("referral and expiry are integers")
        claim = Claim(case_ref, referral_id, purpose, dt.datetime.fromtimestamp(expires, dt.UTC))
    except (ValueError, KeyError, TypeError, OverflowError, OSError) as error:
        raise LinkError("malformed") from error
    if claim.purpose not in PURPOSES:
        raise LinkError("malformed")
    canonical = _encode(claim, matching[0], legacy=kid is None)
    if not hmac.compare_digest(canonical.encode(), token.encode()):
        raise LinkError("malformed")
    if now >= claim.expires:
        raise LinkError("expired")
    return claim


def _read_key(path: Path) -> bytes:
    key = path.read_bytes()
    if len(key) < KEY_BYTES:
        raise LinkKeyError(
            f"링크 서명 키 {path} 가 {KEY_BYTES}바이트보다 짧습니다. 파일을 지우면 새 키가 만들어집니다 "
            f"(the link signing key {path} is shorter than {KEY_BYTES} bytes; delete it to have a new one made)"
        )
    return key


def _create_key(path: Path) -> None:
    """Write a new random key under ``path``, never replacing one that exists.

    The key is written to a private temporary file, created with its final mode (0600, O_EXCL,
    so never readable by anyone else, not even for a moment), then linked into place: another
    process creating the key at the same time either wins the link or reads the winner's whole
    file, never a half-written one.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(secrets.token_bytes(KEY_BYTES))
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process made the key first: use theirs
    finally:
        temporary.unlink(missing_ok=True)


def load_secret(path: Path) -> bytes:
    """The installation's current signing key, created on first use and readable by its owner only."""
    if not path.exists():
        _create_key(path)
    return _read_key(path)


def load_keys(current: Path, older: Path) -> Keyring:
    """The current key (created on first use) and every older key kept in the directory ``older``.

    Rotation: move the current key file into ``older`` (any name not starting with a dot), and
    the next signer creates a new current key; links signed with the old key verify until its
    file is deleted.
    """
    retired = sorted(p for p in older.iterdir() if p.is_file() and not p.name.startswith(".")) if older.is_dir() else []
    return Keyring(load_secret(current), tuple(_read_key(path) for path in retired))
