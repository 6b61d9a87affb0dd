"""Run the Pulumi program without the Pulumi CLI or AWS: Pulumi's mock runtime, as documented.

`run_program("dev")` loads Pulumi.yaml's defaults and Pulumi.dev.yaml into the mock config,
executes infra/__main__.py fresh (runpy), and returns every registered resource (URN, type,
inputs, options) and the resolved stack outputs. The plan classifier (infra/plan.py), the tests
and the benchmark all build on it.

Mocks compute nothing by themselves, so `CollectionsMocks` returns what AWS would: ARNs in
AWS's formats, invoke ARNs, digests. A function's `version` follows terraform-provider-aws's publish
logic against the previous run (`previous=`): see `published_version`. The previous run's outputs
also answer the program's reference to its own stack (its last update), as the Pulumi service would.
"""

from __future__ import annotations

import copy
import hashlib
import json
import runpy
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.settings import ROOT
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra import artifacts, preconditions
from infra.components import image
from infra.config import PROJECT

REPO_ROOT = Path(__file__).resolve().parents[1]
PROGRAM = REPO_ROOT / "infra" / "__main__.py"
ACCOUNT = "123456789012"
FAKE_SECRETS = {
    "anthropicApiKey": "sk-ant-test",
    "voyageApiKey": "pa-test",
    "databasePassword": "test-password-1234",
}


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------
def stack_config(stack: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config a `pulumi up` of this stack would see: project defaults, then the stack file.

    Keys are fully qualified (`collections:services`, `aws:region`); values are Python objects.
    `overrides` are merged in (nested mappings deeply), as `pulumi config set --path` would.
    """
    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
    stack_file = REPO_ROOT / f"Pulumi.{stack}.yaml"
    if not stack_file.exists():
        raise FileNotFoundError(f"no stack file {stack_file.name}")
    values: dict[str, Any] = {}
    for key, spec in (project.get("config") or {}).items():
        if isinstance(spec, dict) and "default" in spec:
            values[f"{PROJECT}:{key}"] = copy.deepcopy(spec["default"])
    values.update(yaml.safe_load(stack_file.read_text()).get("config") or {})
    for key, secret in FAKE_SECRETS.items():
        values.setdefault(f"{PROJECT}:{key}", secret)
    return _merge(values, overrides or {})


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _as_config_string(value: Any) -> str:
    """Pulumi hands the program strings: scalars as typed, objects as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


# --------------------------------------------------------------------------------------------
# Mocks
# --------------------------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """Comparable plain data: archives by path (a zip's name carries its content hash)."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, pulumi.FileArchive | pulumi.FileAsset):
        return {"path": str(value.path)}
    if isinstance(value, pulumi.asset.Archive | pulumi.asset.Asset):
        raise TypeError(f"no plain form for {value!r}")
    return value


def _short_hash(*parts: Any, length: int = 12) -> str:
    return hashlib.sha256(json.dumps(plain(parts), sort_keys=True).encode()).hexdigest()[:length]


# When terraform-provider-aws publishes a new Lambda version on update (Pulumi input names):
# internal/service/lambda/function.go @0156d84, resourceFunctionUpdate publishes when
# `publish && (needsFunctionCodeUpdate || needsFunctionConfigUpdate || HasChange("publish"))`.
# needsFunctionCodeUpdate (`filename` is Pulumi's `code`):
PUBLISHING_CODE_INPUTS = frozenset({
    "code", "codeSha256", "sourceCodeHash", "s3Bucket", "s3Key", "s3ObjectVersion", "sourceKmsKeyArn", "imageUri",
    "architectures",
})
# needsFunctionConfigUpdate (UpdateFunctionConfiguration):
PUBLISHING_CONFIG_INPUTS = frozenset({
    "description", "handler", "fileSystemConfig", "imageConfig", "loggingConfig", "memorySize", "role", "timeout",
    "kmsKeyArn", "layers", "deadLetterConfig", "durableConfig", "snapStart", "tracingConfig", "vpcConfig", "runtime",
    "environment", "ephemeralStorage", "capacityProviderConfig", "publishTo",
})
# Updated in place without a new version: tags (TagResource), reserved concurrency
# (PutFunctionConcurrency), code signing (PutFunctionCodeSigningConfig) and Terraform-only settings.
NON_PUBLISHING_INPUTS = frozenset({
    "tags", "reservedConcurrentExecutions", "codeSigningConfigArn", "skipDestroy", "replaceSecurityGroupsOnDestroy",
    "replacementSecurityGroupIds",
})
# ForceNew (a new function starts again at version 1) and the switch itself.
_FUNCTION_IDENTITY_INPUTS = frozenset({"name", "packageType", "tenancyConfig", "region", "publish"})


class UnmodelledInput(LookupError):
    """A Function input whose effect on publishing the mocks do not know: look it up upstream first."""


@dataclass(frozen=True)
class PublishedFunction:
    inputs: Mapping[str, Any]  # plain inputs as registered
    version: str  # "$LATEST" until something is published


def published_version(previous: PublishedFunction | None, inputs: Mapping[str, Any]) -> str:
    """The function's latest published version after applying `inputs` on top of `previous`."""
    unknown = sorted(set(inputs) - PUBLISHING_CODE_INPUTS - PUBLISHING_CONFIG_INPUTS - NON_PUBLISHING_INPUTS
                     - _FUNCTION_IDENTITY_INPUTS)
    if unknown:
        raise UnmodelledInput(
            f"aws:lambda/function:Function input(s) {', '.join(unknown)}: the mocks do not know whether a change "
            f"publishes a version; read internal/service/lambda/function.go (needsFunctionCodeUpdate, "
            f"needsFunctionConfigUpdate) and add them to infra/mocks.py")
    publish = bool(inputs.get("publish"))
    if previous is None:
        return "1" if publish else "$LATEST"  # CreateFunction(Publish=...) publishes version 1
    from infra.plan import FUNCTION, replacement_rule  # the plan module imports this one

    old = previous.inputs
    changed = {k for k in set(old) | set(inputs) if plain(old.get(k)) != plain(inputs.get(k))}
    if replacement_rule(FUNCTION).forces(changed, old, inputs):
        return "1" if publish else "$LATEST"  # a new function
    publishes = publish and bool(changed & (PUBLISHING_CODE_INPUTS | PUBLISHING_CONFIG_INPUTS | {"publish"}))
    if not publishes:
        return previous.version
    return "1" if previous.version == "$LATEST" else str(int(previous.version) + 1)


class CollectionsMocks(pulumi.runtime.Mocks):
    """Answers resource registrations and invokes the way AWS (and pulumi-docker) would."""

    def __init__(self, region: str, deployed: Mapping[str, str] | None = None,
                 previous: ProgramRun | None = None):
        self.region = region
        # function name → "zip" | "image": what get_functions/get_function report as running on AWS.
        self.deployed = dict(deployed or {})
        # What the last update left: published functions by name, and the stack's outputs.
        self.previous_functions: Mapping[str, PublishedFunction] = previous.functions if previous else {}
        self.previous_outputs: Mapping[str, Any] = previous.outputs if previous else {}
        self.functions: dict[str, PublishedFunction] = {}

    def call(self, args: pulumi.runtime.MockCallArgs):
        token, inputs = args.token, args.args
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{self.region}{z}" for z in "abc"]
            return {"names": names, "zoneIds": [f"euw1-az{i}" for i in range(1, 4)], "id": self.region}
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/test", "userId": "test"}
        if token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region}
        if token == "aws:lambda/getFunctions:getFunctions":
            names = sorted(self.deployed)
            return {"functionNames": names, "functionArns": [self._function_arn(n) for n in names]}
        if token == "aws:lambda/getFunction:getFunction":
            name = inputs["functionName"]
            if name not in self.deployed:
                raise Exception(f"ResourceNotFoundException: Function not found: {name}")
            image = self.deployed[name] == "image"
            return {
                "functionName": name, "arn": self._function_arn(name),
                "imageUri": f"{ACCOUNT}.dkr.ecr.{self.region}.amazonaws.com/x@sha256:{'0' * 64}" if image else "",
                "packageType": "Image" if image else "Zip",
            }
        if token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {"userName": "AWS", "password": "ecr-token", "authorizationToken": "QVdTOmVjci10b2tlbg==",
                    "proxyEndpoint": f"https://{ACCOUNT}.dkr.ecr.{self.region}.amazonaws.com",
                    "expiresAt": "2100-01-01T00:00:00Z", "id": self.region}
        raise NotImplementedError(f"the mocks do not answer invoke {token}")

    def _function_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{name}"

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        typ, name, inputs = args.typ, args.name, dict(args.inputs)
        state = dict(inputs)
        r, a = self.region, ACCOUNT
        resource_id = f"{name}-{_short_hash(typ, name, length=8)}"
        if typ == "pulumi:pulumi:StackReference":
            # This program reads its own stack's last outputs; none before the first update.
            return inputs.get("name", name), {**inputs, "outputs": dict(self.previous_outputs),
                                              "secretOutputNames": []}
        if typ == "aws:lambda/function:Function":
            fn = inputs.get("name", name)
            arn = self._function_arn(fn)
            registered = {k: plain(v) for k, v in inputs.items()}
            version = published_version(self.previous_functions.get(fn), registered)
            self.functions[fn] = PublishedFunction(registered, version)
            state.update(arn=arn, name=fn, version=version, qualifiedArn=f"{arn}:{version}",
                         invokeArn=self._invoke_arn(arn), qualifiedInvokeArn=self._invoke_arn(f"{arn}:{version}"))
            resource_id = fn
        elif typ == "aws:lambda/alias:Alias":
            function = inputs["functionName"]
            function_arn = function if function.startswith("arn:") else self._function_arn(function)
            arn = f"{function_arn}:{inputs['name']}"
            state.update(arn=arn, invokeArn=self._invoke_arn(arn))
            resource_id = arn
        elif typ == "aws:apigatewayv2/api:Api":
            resource_id = _short_hash(name, length=10)
            state.update(apiEndpoint=f"https://{resource_id}.execute-api.{r}.amazonaws.com",
                         executionArn=f"arn:aws:execute-api:{r}:{a}:{resource_id}",
                         arn=f"arn:aws:apigateway:{r}::/apis/{resource_id}")
        elif typ == "aws:s3/bucket:Bucket":
            bucket = inputs.get("bucket") or f"{name}-{_short_hash(name, length=7)}"
            state.update(bucket=bucket, arn=f"arn:aws:s3:::{bucket}",
                         bucketRegionalDomainName=f"{bucket}.s3.{r}.amazonaws.com")
            resource_id = bucket
        elif typ == "aws:cloudwatch/eventBus:EventBus":
            state.update(arn=f"arn:aws:events:{r}:{a}:event-bus/{inputs['name']}")
            resource_id = inputs["name"]
        elif typ == "aws:cloudwatch/eventRule:EventRule":
            rule = inputs.get("name") or f"{name}-{_short_hash(name, length=7)}"
            bus = inputs.get("eventBusName") or "default"
            path = rule if bus == "default" else f"{bus}/{rule}"
            state.update(name=rule, eventBusName=bus, arn=f"arn:aws:events:{r}:{a}:rule/{path}")
            resource_id = f"{bus}/{rule}"
        elif typ == "aws:sqs/queue:Queue":
            queue = inputs.get("name") or f"{name}-{_short_hash(name, length=7)}"
            state.update(name=queue, arn=f"arn:aws:sqs:{r}:{a}:{queue}",
                         url=f"https://sqs.{r}.amazonaws.com/{a}/{queue}")
            resource_id = state["url"]
        elif typ == "aws:cognito/userPool:UserPool":
            resource_id = f"{r}_{_short_hash(name, length=9)}"
            state.update(arn=f"arn:aws:cognito-idp:{r}:{a}:userpool/{resource_id}",
                         endpoint=f"cognito-idp.{r}.amazonaws.com/{resource_id}")
        elif typ == "aws:ecr/repository:Repository":
            repo = inputs.get("name") or name
            state.update(name=repo, registryId=a, arn=f"arn:aws:ecr:{r}:{a}:repository/{repo}",
                         repositoryUrl=f"{a}.dkr.ecr.{r}.amazonaws.com/{repo}")
            resource_id = repo
        elif typ == "docker:index/remoteImage:RemoteImage":
            # The local image's id: depends on the tag, which depends on the context's content.
            state.update(imageId=f"sha256:{_short_hash(inputs['name'], inputs.get('build'), length=64)}")
            resource_id = f"{state['imageId']}{inputs['name']}"
        elif typ == "docker:index/registryImage:RegistryImage":
            # The pushed manifest's digest (what `repository@digest` pins).
            state.update(sha256Digest=f"sha256:{_short_hash(inputs['name'], length=64)}")
            resource_id = inputs["name"]
        elif typ == "aws:rds/instance:Instance":
            identifier = inputs.get("identifier") or f"{name}-{_short_hash(name, length=7)}"
            state.update(identifier=identifier, address=f"{identifier}.abc123.{r}.rds.amazonaws.com", port=5432,
                         endpoint=f"{identifier}.abc123.{r}.rds.amazonaws.com:5432",
                         arn=f"arn:aws:rds:{r}:{a}:db:{identifier}")
            resource_id = identifier
        elif typ == "aws:rds/parameterGroup:ParameterGroup":
            group = inputs.get("name") or f"{name}-{_short_hash(name, length=7)}"
            state.update(name=group, arn=f"arn:aws:rds:{r}:{a}:pg:{group}")
            resource_id = group
        elif typ == "aws:rds/proxy:Proxy":
            state.update(name=inputs.get("name") or name, endpoint=f"{name}.proxy-abc123.{r}.rds.amazonaws.com",
                         arn=f"arn:aws:rds:{r}:{a}:db-proxy:prx-{_short_hash(name, length=10)}")
        elif typ == "aws:secretsmanager/secret:Secret":
            secret = inputs.get("name") or name
            state.update(arn=f"arn:aws:secretsmanager:{r}:{a}:secret:{secret}-{_short_hash(name, length=6)}")
            resource_id = state["arn"]
        elif typ == "aws:iam/role:Role":
            role = inputs.get("name") or f"{name}-{_short_hash(name, length=7)}"
            state.update(name=role, arn=f"arn:aws:iam::{a}:role/{role}")
            resource_id = role
        elif typ == "aws:cloudwatch/logGroup:LogGroup":
            group = inputs.get("name") or f"{name}-{_short_hash(name, length=7)}"
            state.update(name=group, arn=f"arn:aws:logs:{r}:{a}:log-group:{group}")
            resource_id = group
        elif typ == "aws:sns/topic:Topic":
            state.update(arn=f"arn:aws:sns:{r}:{a}:{name}")
        # --- the web app (infra/components/web.py) -----------------------------------------
        elif typ == "aws:cloudfront/distribution:Distribution":
            resource_id = "E" + _short_hash(name, length=13).upper()
            state.update(arn=f"arn:aws:cloudfront::{a}:distribution/{resource_id}",
                         domainName=f"d{_short_hash(name, length=13)}.cloudfront.net", hostedZoneId="Z2FDTNDATAQYW2")
        elif typ == "aws:cloudfront/originAccessControl:OriginAccessControl":
            resource_id = "E" + _short_hash(name, length=13).upper()
        elif typ == "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy":
            resource_id = str(uuid.UUID(_short_hash(name, length=32)))
        elif typ.startswith("aws:"):
            service = typ.split(":")[1].split("/")[0]
            state.setdefault("arn", f"arn:aws:{service}:{r}:{a}:{name}")
            state.setdefault("name", inputs.get("name", name))
        return resource_id, state

    def _invoke_arn(self, arn: str) -> str:
        return f"arn:aws:apigateway:{self.region}:lambda:path/2015-03-31/functions/{arn}/invocations"


@dataclass(frozen=True)
class Resource:
    urn: str
    type: str
    name: str
    custom: bool
    inputs: Mapping[str, Any]
    parent: str
    ignore_changes: tuple[str, ...] = ()
    delete_before_replace: bool = False
    dependencies: tuple[str, ...] = ()
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    replace_with: tuple[str, ...] = ()  # replaced whenever one of these is
    replace_on_changes: tuple[str, ...] = ()  # inputs whose change replaces, whatever the provider says ("*": any)
    deleted_with: str = ""


def _reveal(value: Any) -> Any:
    """Inputs with Pulumi's secret wrappers replaced by their values (tests read them)."""
    if isinstance(value, Mapping):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return _reveal(value.get("value"))
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reveal(v) for v in value]
    return value


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, also keeping each registration's inputs and options (which `Mocks` never sees)."""

    def __init__(self, mocks: pulumi.runtime.Mocks, unsupported_features: Sequence[int] = ()):
        super().__init__(mocks)
        self.registrations: dict[str, Resource] = {}
        self.unsupported_features = set(unsupported_features)

    def GetDeploymentInfo(self, request):
        """The engine's feature list, less `unsupported_features` (an older CLI)."""
        info = super().GetDeploymentInfo(request)
        kept = [f for f in info.supportedFeatures if f not in self.unsupported_features]
        del info.supportedFeatures[:]
        info.supportedFeatures.extend(kept)
        return info

    def SupportsFeature(self, request):
        """The per-feature probe older SDKs use (`replaceWith`, `deletedWith`, …), consistent with the above."""
        from pulumi.runtime.settings import _LEGACY_FEATURE_MAPPING

        if _LEGACY_FEATURE_MAPPING.get(request.id) in self.unsupported_features:
            return type("SupportsFeatureResponse", (object,), {"hasSupport": False})
        return super().SupportsFeature(request)

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        urn = self.make_urn(request.parent, request.type, request.name)
        self.registrations[urn] = Resource(
            urn=urn,
            type=request.type,
            name=request.name,
            custom=bool(request.custom),
            inputs=_reveal(rpc.deserialize_properties(request.object)) if request.custom else {},
            parent=request.parent,
            ignore_changes=tuple(request.ignoreChanges),
            delete_before_replace=bool(request.deleteBeforeReplace),
            dependencies=tuple(request.dependencies),
            property_dependencies={k: tuple(v.urns) for k, v in request.propertyDependencies.items()},
            replace_with=tuple(request.replace_with),
            replace_on_changes=tuple(request.replaceOnChanges),
            deleted_with=request.deletedWith,
        )
        return response


@dataclass
class ProgramRun:
    stack: str
    config: dict[str, Any]
    resources: dict[str, Resource]  # by URN, custom resources and components
    outputs: dict[str, Any]
    zips: dict[str, artifacts.ZipArtifact] = field(default_factory=dict)
    functions: dict[str, PublishedFunction] = field(default_factory=dict)  # by function name, as published

    def of_type(self, typ: str) -> list[Resource]:
        return [r for r in self.resources.values() if r.type == typ]

    def count(self, typ: str) -> int:
        return len(self.of_type(typ))

    def one(self, typ: str, name: str) -> Resource:
        found = [r for r in self.of_type(typ) if r.name == name]
        if len(found) != 1:
            raise LookupError(f"{len(found)} resources of type {typ} named {name}")
        return found[0]


def code_only_installer(lock: Path, platform: str, target: Path) -> None:
    """Stands in for pip under the mocks: records what would be installed, downloads nothing."""
    (target / "REQUIREMENTS.txt").write_text(f"{platform}\n{lock.read_text()}")


@contextmanager
def _build_dir(build_dir: Path | None, source_root: Path | None) -> Iterator[None]:
    saved = artifacts.BUILD_DIR, artifacts.SOURCE_PACKAGE
    artifacts.BUILD_DIR = build_dir or saved[0]
    artifacts.SOURCE_PACKAGE = source_root or saved[1]
    try:
        yield
    finally:
        artifacts.BUILD_DIR, artifacts.SOURCE_PACKAGE = saved


def run_program(
    stack: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    deployed: Mapping[str, str] | None = None,
    installer: artifacts.Installer = code_only_installer,
    build_dir: Path | None = None,
    source_root: Path | None = None,
    previous: ProgramRun | None = None,
    unsupported_features: Sequence[int] = (),
    account: preconditions.AccountConcurrency = preconditions.AccountConcurrency(limit=1000, unreserved=1000),
    pushed: Mapping[str, str] | None = None,
) -> ProgramRun:
    """Run infra/__main__.py for `stack` under the mocks and return what it registered and exported.

    `deployed` says which functions AWS runs now and as what ("zip"/"image"); `previous` is the
    run last applied (published versions, stack outputs); `installer` replaces pip (default: a
    code-only archive); `source_root` swaps the services package (a code release); `build_dir`
    keeps the artifacts out of .collections/build; `unsupported_features` plays an older engine
    (resource_pb2.RESOURCE_MONITOR_FEATURE_* ids it does not report); `account` is what Lambda
    GetAccountSettings reports (default: the usual 1000, nothing reserved); `pushed` is
    what ECR holds, "repository:tag" -> digest (default: nothing).
    """
    config = stack_config(stack, overrides)
    region = config.get("aws:region", "")
    mocks = CollectionsMocks(region, deployed, previous)
    monitor = RecordingMonitor(mocks, unsupported_features)
    ROOT.set(None)  # a fresh root stack: outputs of a previous run must not leak in
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    secret_keys = [f"{PROJECT}:{key}" for key in FAKE_SECRETS]
    pulumi.runtime.set_all_config({k: _as_config_string(v) for k, v in config.items()}, secret_keys)

    resolved: dict[str, Any] = {}

    def program() -> None:
        runpy.run_path(str(PROGRAM), run_name="__main__")
        root = pulumi.runtime.get_root_resource()
        outputs = pulumi.Output.from_input(root.outputs)  # type: ignore[union-attr]
        resolved.update(_sync_await(outputs.future()) or {})

    with artifacts.use_installer(installer), _build_dir(build_dir, source_root), \
            preconditions.use_account_reader(lambda _config: account), \
            image.use_registry_reader(lambda _region, repository, tag: (pushed or {}).get(f"{repository}:{tag}")):
        _sync_await(run_pulumi_func(program))
    return ProgramRun(stack=stack, config=config, resources=dict(monitor.registrations), outputs=resolved,
                      functions=dict(mocks.functions))
