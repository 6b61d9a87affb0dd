"""The floors the code relies on are declared, in pyproject and in every Lambda group (issue 10).

- PyJWT 2.14.0: a signature spelled in non-canonical base64url is refused (GHSA-hxm8-2xgr-2p9m), so
  a token has one text (the api remembers verified tokens by it). 2.13.0: a JWK's public key is no
  longer accepted as an HMAC secret (CVE-2026-48526), and PyJWKClient's unbounded refetch and `jku`
  SSRF are fixed (PYSEC-2026-175/177). 2.12.0 checks `crit` headers (CVE-2026-32597); 2.10.1 stopped
  partial `iss` matches (CVE-2024-53861). We decode with a PyJWK from our own JWKS cache
  (services/core/auth.py).
- urllib3 2: services/core/ai/voyage.py uses `Retry(backoff_max=...)`, a 2.0 API,
  and botocore alone would allow 1.x.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from services import catalog

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
FLOORS = {"pyjwt": Version("2.14.0"), "urllib3": Version("2")}


def _floor(requirement: Requirement) -> Version | None:
    lows = [Version(spec.version) for spec in requirement.specifier if spec.operator in (">=", "==", "~=")]
    return max(lows) if lows else None


def _by_name(lines) -> dict[str, Requirement]:
    return {Requirement(line).name.lower(): Requirement(line) for line in lines}


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_the_project_declares_the_floor(name):
    dependencies = _by_name(tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"])
    assert name in dependencies, f"{name} is not declared directly in pyproject.toml"
    floor = _floor(dependencies[name])
    assert floor is not None and floor >= FLOORS[name], (name, str(dependencies[name].specifier))


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_every_lambda_group_carries_the_floor(name):
    """Each function's zip is built from its catalog group, not from pyproject."""
    base = _by_name(catalog.BASE_REQUIREMENTS)
    assert name in base
    floor = _floor(base[name])
    assert floor is not None and floor >= FLOORS[name], (name, str(base[name].specifier))
