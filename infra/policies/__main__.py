"""The policy pack (`pulumi preview --policy-pack infra/policies`). Constructing a PolicyPack serves
forever, so it happens only here; the rules live in infra.policies.rules."""

from pulumi_policy import PolicyPack

from infra.policies.rules import POLICIES

PolicyPack(name="collections", policies=POLICIES)
