"""API keys and callers: who is asking, and what they may see (docs/security.md).

A key is ``sa_`` plus 43 URL-safe characters (256 random bits). Only its SHA-256 is stored; a key is shown
once, when it is created. The key's ``name`` is the owner of every job and evaluation the key submits, so
a key can be rotated (revoke it, create another with the same name) without losing its jobs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select, true, update
from sqlalchemy.orm import Session

from skill_adapter.core.errors import InvalidParameterError, SkillAdapterError
from skill_adapter.models import ApiKey, Evaluation, Job, utcnow

KEY_PREFIX = "sa_"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


class UnauthorizedError(SkillAdapterError):
    code = "unauthorized"
    status_code = 401


@dataclass(frozen=True)
class Caller:
    """Who is calling: a key's name (``None`` while the server has no key) and whether it is an admin.

    With no key configured every caller is the same anonymous admin: the service works as before keys.
    """

    name: str | None
    admin: bool

    @property
    def owner(self) -> str | None:
        """The owner written on what this caller submits."""
        return self.name

    def sees(self, owner: str | None) -> bool:
        return self.admin or owner == self.name

    def owns(self, column: Any) -> ColumnElement[bool]:
        """A WHERE clause that keeps the rows this caller may see (``column`` is ``Job.owner`` or the like)."""
        if self.admin:
            return true()
        return column.is_(None) if self.name is None else column == self.name  # type: ignore[no-any-return]


ANONYMOUS = Caller(name=None, admin=True)


@dataclass(frozen=True)
class KeyEntry:
    name: str
    key_hash: str
    admin: bool


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def match_key(presented: str, entries: Sequence[KeyEntry]) -> KeyEntry | None:
    """The entry whose hash is the presented key's, comparing every entry in constant time."""
    digest = hash_key(presented)
    found = None
    for entry in entries:
        if hmac.compare_digest(entry.key_hash, digest):
            found = entry
    return found


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidParameterError(
            f"key name {name!r}: 1-64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit",
            field="name",
        )
    return name


def active_keys(session: Session) -> list[KeyEntry]:
    rows = session.execute(select(ApiKey.name, ApiKey.key_hash, ApiKey.admin).where(ApiKey.revoked_at.is_(None)))
    return [KeyEntry(name=row.name, key_hash=row.key_hash, admin=bool(row.admin)) for row in rows]


def keys_required(session: Session) -> bool:
    """Whether the API asks for a key: once any key was created, even if all are revoked since (revoking
    the last key locks everyone out; it never opens the server again)."""
    return session.scalar(select(ApiKey.id).limit(1)) is not None


def create_key(session: Session, name: str, *, admin: bool = False) -> str:
    """Store a new key for ``name`` and return it (the only time it is seen). One live key per name."""
    check_name(name)
    live = session.scalar(select(func.count()).where(ApiKey.name == name, ApiKey.revoked_at.is_(None)))
    if live:
        raise InvalidParameterError(
            f"a key named {name!r} already exists; revoke it first to replace it (its jobs stay with the name)",
            field="name",
        )
    key = new_key()
    session.add(ApiKey(name=name, key_hash=hash_key(key), prefix=key[:7], admin=admin, created_at=utcnow()))
    session.flush()
    return key


def list_keys(session: Session) -> Sequence[ApiKey]:
    return session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)).all()


def revoke_key(session: Session, name: str) -> int:
    """Revoke the live key of ``name``; the number revoked (0: none was live)."""
    result = session.execute(
        update(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def adopt_unowned(session: Session, name: str) -> tuple[int, int]:
    """Give every job and evaluation without an owner to ``name``: (jobs, evaluations) changed."""
    check_name(name)
    jobs = session.execute(update(Job).where(Job.owner.is_(None)).values(owner=name))
    evaluations = session.execute(update(Evaluation).where(Evaluation.owner.is_(None)).values(owner=name))
    return int(jobs.rowcount), int(evaluations.rowcount)  # type: ignore[attr-defined]


def bearer_token(authorization: str | None) -> str | None:
    """The key in ``Authorization: Bearer KEY``; None when the header is absent or of another scheme."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
