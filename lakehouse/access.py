"""Who may call the data product APIs: service accounts, grants and hashed API keys.

Accounts and grants are versioned in `domains/access.yml`, reviewed like code: a grant on
another domain's product names the producing domain's owner as approver. API keys are issued
per account by `mesh keys create`, printed once and stored only as SHA-256 digests under
`data/access/keys.json` (keys are 192-bit random tokens, so a fast digest is enough; nothing
there can be turned back into a key).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lakehouse.config import get_settings
from lakehouse.registry import Registry, RegistryError, load_registry

ACCESS_FILE = "access.yml"
KEY_PREFIX = "mesh_"
DEFAULT_RATE_LIMIT = 100


class AccessError(ValueError):
    """The access file is wrong, or an account or key request cannot be served."""


class Account(BaseModel):
    """A service account: one consumer (a domain's service, the dashboard, a notebook...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$", description="e.g. marketing-service")
    owner: str = Field(description="Email of the team accountable for this account")
    description: str = Field(min_length=1)
    domain: str | None = Field(default=None, description="Domain whose products it owns")
    admin: bool = Field(default=False, description="Reads every product except restricted ones")
    rate_limit_per_minute: int = Field(default=DEFAULT_RATE_LIMIT, gt=0)


class PlatformProduct(BaseModel):
    """A product served by the platform rather than a domain, e.g. churn predictions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z_]+\.[a-z_0-9]+$", description="e.g. ml.churn_predict")
    owner: str
    description: str = Field(min_length=1)


class Grant(BaseModel):
    """Permission for one account to read one product, with who approved it and when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str
    product: str = Field(description="'domain.product'")
    approved_by: str = Field(description="Email of the producing domain's owner")
    approved_on: date


class AccessPolicy(BaseModel):
    """The content of domains/access.yml, checked against the domain registry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accounts: list[Account]
    platform_products: list[PlatformProduct] = Field(default_factory=list)
    restricted: list[str] = Field(
        default_factory=list, description="Products only their own domain's accounts may read"
    )
    grants: list[Grant] = Field(default_factory=list)

    def account(self, name: str) -> Account:
        """The account called `name`."""
        for account in self.accounts:
            if account.name == name:
                return account
        known = ", ".join(a.name for a in self.accounts)
        raise AccessError(f"unknown service account {name!r}; accounts are: {known}")

    def allows(self, account: Account, product: str) -> bool:
        """Whether `account` may read `product` ('domain.product')."""
        if account.domain is not None and product.split(".")[0] == account.domain:
            return True
        if product in self.restricted:
            return False
        if account.admin:
            return True
        return any(g.account == account.name and g.product == product for g in self.grants)

    def products_of(self, account: Account, products: list[str]) -> list[str]:
        """The products among `products` that `account` may read."""
        return [p for p in products if self.allows(account, p)]

    def owner_of(self, product: str, registry: Registry) -> str:
        """Email of whoever approves grants on `product`."""
        for platform in self.platform_products:
            if platform.name == product:
                return platform.owner
        return registry[product.split(".")[0]].owner


def access_file() -> Path:
    """Location of the versioned accounts-and-grants file."""
    return get_settings().domains_dir / ACCESS_FILE


def _check(policy: AccessPolicy, registry: Registry, path: Path) -> None:
    names = [a.name for a in policy.accounts]
    for name in names:
        if names.count(name) > 1:
            raise AccessError(f"{path}: account {name!r} is listed twice; keep one entry")
    known = {p.qualified_name for p in registry.products()}
    known |= {p.name for p in policy.platform_products}
    for account in policy.accounts:
        if account.domain is not None and account.domain not in registry.domains:
            raise AccessError(
                f"{path}: account {account.name!r} names unknown domain {account.domain!r}; "
                f"use one of {', '.join(registry.domains)}"
            )
    for product in policy.restricted:
        if product not in known:
            raise AccessError(f"{path}: restricted product {product!r} does not exist")
    for grant in policy.grants:
        if grant.account not in names:
            raise AccessError(
                f"{path}: grant names unknown account {grant.account!r}; add it under accounts"
            )
        if grant.product not in known:
            raise AccessError(
                f"{path}: grant to {grant.account!r} names unknown product {grant.product!r}; "
                "write it as domain.product, e.g. ventas.daily_revenue"
            )
        owner = policy.owner_of(grant.product, registry)
        if grant.approved_by != owner:
            raise AccessError(
                f"{path}: grant of {grant.product} to {grant.account} is approved by "
                f"{grant.approved_by}, but only the product owner {owner} can approve it"
            )
        if grant.product in policy.restricted:
            raise AccessError(
                f"{path}: {grant.product} is restricted to its own domain; remove the grant "
                f"to {grant.account}"
            )


def load_policy(path: Path | None = None, registry: Registry | None = None) -> AccessPolicy:
    """Read and check domains/access.yml; errors name the file, the entry and the fix."""
    path = Path(path) if path is not None else access_file()
    if not path.is_file():
        raise AccessError(f"{path} is missing; it lists the service accounts and their grants")
    try:
        raw = yaml.safe_load(path.read_text())
        policy = AccessPolicy.model_validate(raw)
    except yaml.YAMLError as exc:
        raise AccessError(f"{path} is not valid YAML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise AccessError(f"{path}: {where}: {first['msg']}") from None
    try:
        registry = registry or load_registry()
    except RegistryError as exc:
        raise AccessError(str(exc)) from None
    _check(policy, registry, path)
    return policy


@lru_cache(maxsize=4)
def _cached_policy(path: Path, mtime_ns: int) -> AccessPolicy:
    return load_policy(path)


def current_policy() -> AccessPolicy:
    """The policy in force, re-read when the file changes."""
    path = access_file()
    mtime = path.stat().st_mtime_ns if path.is_file() else 0
    return _cached_policy(path, mtime)


# --- keys -------------------------------------------------------------------------------------


def keys_file() -> Path:
    """Where the digests of issued API keys are kept (generated state, not versioned)."""
    return get_settings().data_dir / "access" / "keys.json"


def digest(key: str) -> str:
    """SHA-256 hex digest of an API key: the only form in which keys are stored."""
    return hashlib.sha256(key.encode()).hexdigest()


def _read_keys(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        return list(json.loads(path.read_text())["keys"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise AccessError(
            f"{path} is damaged ({exc}); move it away and issue new keys with `mesh keys create`"
        ) from None


def list_keys() -> list[dict[str, Any]]:
    """Issued keys: id, account and creation time (never the key itself)."""
    return [
        {k: entry[k] for k in ("key_id", "account", "created_at")}
        for entry in _read_keys(keys_file())
    ]


def create_key(account: str, policy: AccessPolicy | None = None) -> str:
    """Issue a new key for an existing account; returns the key, which is stored only hashed."""
    policy = policy or load_policy()
    policy.account(account)
    path = keys_file()
    entries = _read_keys(path)
    key_id = secrets.token_hex(4)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(24)}"
    entries.append(
        {
            "key_id": key_id,
            "account": account,
            "sha256": digest(key),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"keys": entries}, indent=2))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)  # atomic: a crash leaves the previous keys file intact
    return key


@lru_cache(maxsize=4)
def _key_index(path: Path, mtime_ns: int) -> dict[str, str]:
    return {entry["sha256"]: entry["account"] for entry in _read_keys(path)}


def account_for_key(key: str) -> str | None:
    """The account a key was issued to, or None for an unknown key."""
    path = keys_file()
    if not path.is_file():
        return None
    return _key_index(path, path.stat().st_mtime_ns).get(digest(key))
