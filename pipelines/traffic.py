"""A function's `live` alias and its versions: reading weights, moving traffic, deleting versions.

Lambda routes a weighted alias as: FunctionVersion gets 1 - w, each AdditionalVersionWeights entry
gets its w. A shift keeps the stable version as FunctionVersion and grows the new one's weight;
finishing (or rolling back) points FunctionVersion at one version and clears the weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelines.errors import NotFound, ReleaseError, aws_errors


@dataclass(frozen=True)
class AliasState:
    name: str
    version: str
    weights: dict[str, float] = field(default_factory=dict)

    @property
    def canary(self) -> tuple[str, float] | None:
        """(version, weight) of the version being shifted to, if a shift is under way."""
        if not self.weights:
            return None
        if len(self.weights) > 1:
            raise ReleaseError(f"alias {self.name} routes to several extra versions {self.weights}: not ours")
        return next(iter(self.weights.items()))

    def describe(self) -> str:
        if not self.weights:
            return f"v{self.version} 100%"
        shares = [f"v{self.version} {(1 - sum(self.weights.values())) * 100:g}%"]
        shares += [f"v{v} {w * 100:g}%" for v, w in self.weights.items()]
        return ", ".join(shares)


def _alias_state(raw: dict[str, Any]) -> AliasState:
    weights = ((raw.get("RoutingConfig") or {}).get("AdditionalVersionWeights")) or {}
    return AliasState(
        name=raw["Name"],
        version=raw["FunctionVersion"],
        weights={str(v): float(w) for v, w in weights.items() if float(w) > 0},
    )


class Traffic:
    def __init__(self, lambda_client: Any, function_name: str, alias: str = "live"):
        self.client = lambda_client
        self.function_name = function_name
        self.alias_name = alias

    def alias(self) -> AliasState:
        try:
            with aws_errors(f"reading alias {self.function_name}:{self.alias_name}", self.client):
                return _alias_state(self.client.get_alias(FunctionName=self.function_name, Name=self.alias_name))
        except NotFound:
            raise NotFound(
                f"alias {self.alias_name!r} of function {self.function_name!r} does not exist; has the stack been "
                "deployed (`pulumi up`)?"
            ) from None

    def aliases(self) -> list[AliasState]:
        with aws_errors(f"listing aliases of {self.function_name}", self.client):
            pages = self.client.get_paginator("list_aliases").paginate(FunctionName=self.function_name)
            return [_alias_state(a) for page in pages for a in page.get("Aliases", [])]

    def versions(self) -> list[str]:
        """Published versions, oldest first ($LATEST is not a version)."""
        with aws_errors(f"listing versions of {self.function_name}", self.client):
            pages = self.client.get_paginator("list_versions_by_function").paginate(FunctionName=self.function_name)
            found = {v["Version"] for page in pages for v in page.get("Versions", []) if v["Version"] != "$LATEST"}
        return sorted(found, key=int)

    def latest_version(self) -> str:
        versions = self.versions()
        if not versions:
            raise NotFound(f"function {self.function_name!r} has no published version")
        return versions[-1]

    def resolve(self, ref: str) -> str:
        """"latest" or a version number, checked to exist."""
        if ref == "latest":
            return self.latest_version()
        if not ref.isdigit():
            raise NotFound(f"version must be a number or 'latest', got {ref!r}")
        if ref not in self.versions():
            raise NotFound(f"function {self.function_name!r} has no version {ref}")
        return ref

    def point(self, version: str) -> AliasState:
        """The whole alias on one version, weights cleared."""
        with aws_errors(f"moving {self.function_name}:{self.alias_name} to version {version}", self.client):
            raw = self.client.update_alias(
                FunctionName=self.function_name,
                Name=self.alias_name,
                FunctionVersion=version,
                RoutingConfig={"AdditionalVersionWeights": {}},
            )
        return _alias_state(raw)

    def route(self, stable: str, target: str, weight: float) -> AliasState:
        """`weight` of invocations to `target`, the rest to `stable` (1.0: all on target)."""
        if weight >= 1:
            return self.point(target)
        if weight <= 0:
            return self.point(stable)
        doing = f"routing {weight * 100:g}% of {self.function_name}:{self.alias_name} to version {target}"
        with aws_errors(doing, self.client):
            raw = self.client.update_alias(
                FunctionName=self.function_name,
                Name=self.alias_name,
                FunctionVersion=stable,
                RoutingConfig={"AdditionalVersionWeights": {target: round(weight, 6)}},
            )
        return _alias_state(raw)

    def delete_version(self, version: str) -> None:
        with aws_errors(f"deleting version {version} of {self.function_name}", self.client):
            self.client.delete_function(FunctionName=self.function_name, Qualifier=version)
