"""A service's container image: an ECR repository and one single-platform image, pinned by digest.

Built with pulumi-docker's RemoteImage (the bridged kreuzwerker docker_image, buildx underneath)
and pushed with RegistryImage, not with pulumi-docker's native `Image`: the native one has no
input for BuildKit attestations, and a build with provenance or SBOM attestations pushes an image
*index*, which Lambda rejects. RemoteImage's `provenance`/`sbom` turn them off explicitly.

Retention: every pushed image carries an immutable content tag and may back a published Lambda
version (Lambda fails a version whose image is gone: StateReasonCode ImageDeleted). So neither
the lifecycle policy nor Pulumi ever removes a tagged image: the policy expires untagged images
only, and a replaced RegistryImage keeps its image (`keep_remotely`). That keeps every version
`collections-release prune` keeps (it deletes versions, never images) runnable.

Re-pushing an existing tag fails on an IMMUTABLE repository, even for identical content
(moby/buildkit#3776, aws/containers-roadmap#2380: "tag invalid: The image tag ... already exists").
A deploy whose content tag the repository already holds (a revert, a rollback to an older
commit, a re-run on a fresh runner) therefore builds and pushes nothing: it pins the digest ECR
holds for that tag (the build and push resources of an earlier run then leave the state: the
RegistryImage keeps its image, `keep_remotely`; the function's image URI stays the same string).
That needs the repository's name before any resource exists, so the name is explicit
(`{project}-{stack}-{service}`), not auto-named.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from infra.artifacts import ImageContext


@dataclass
class ContainerImageArgs:
    context: ImageContext
    force_delete: bool  # dev: a repository goes with its images; prod: deleting one is a manual step
    tags: dict[str, str]
    region: str


def context_tag(context: ImageContext) -> str:
    """A tag from the context's content: tags are immutable, so new code must mean a new tag."""
    digest = hashlib.sha256()
    for path in sorted(p for p in context.path.rglob("*") if p.is_file()):
        digest.update(path.relative_to(context.path).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


# Untagged images are never what a function runs (our pushes are tagged, tags are immutable):
# leftovers of interrupted pushes. Tagged images are not selected by any rule.
UNTAGGED_EXPIRY_DAYS = 1


def lifecycle_policy() -> dict[str, Any]:
    return {"rules": [{
        "rulePriority": 1,
        "description": "expire untagged images (interrupted pushes); tagged images may back a published version",
        "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
                      "countNumber": UNTAGGED_EXPIRY_DAYS},
        "action": {"type": "expire"},
    }]}


# (region, repository name, tag) -> the digest ECR holds for that tag, or None when it holds none.
RegistryReader = Callable[[str, str, str], "str | None"]


def read_from_ecr(region: str, repository: str, tag: str) -> str | None:
    """ECR DescribeImages for one tag, with the credentials the AWS provider uses (`aws:profile`)."""
    import boto3

    session = boto3.Session(profile_name=pulumi.Config("aws").get("profile"), region_name=region)
    return digest_of_tag(session.client("ecr"), repository, tag)


def digest_of_tag(client: Any, repository: str, tag: str) -> str | None:
    try:
        answer = client.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except (client.exceptions.RepositoryNotFoundException, client.exceptions.ImageNotFoundException):
        return None  # first deploy of this service's images, or new content
    (detail,) = answer["imageDetails"]
    return detail["imageDigest"]


_registry_reader: RegistryReader = read_from_ecr


@contextmanager
def use_registry_reader(reader: RegistryReader) -> Iterator[None]:
    """Swap where pushed tags are looked up (the mock runs have no AWS account)."""
    global _registry_reader
    previous, _registry_reader = _registry_reader, reader
    try:
        yield
    finally:
        _registry_reader = previous


class ContainerImage(pulumi.ComponentResource):
    image_uri: pulumi.Output[str]

    def __init__(self, name: str, args: ContainerImageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("collections:image:ContainerImage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.repository = aws.ecr.Repository(
            f"{name}-repo",
            # Explicit, so the program can look its tags up before Pulumi creates anything; ECR
            # repository names are lowercase only (CreateRepository repositoryName pattern).
            name=name.lower(),
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
            force_delete=args.force_delete,
            tags=args.tags,
            opts=child,
        )
        # The provider has no Update for a lifecycle policy (every input replaces) and a repository
        # holds one policy: create-before-delete would write the new policy, then delete it.
        aws.ecr.LifecyclePolicy(f"{name}-lifecycle", repository=self.repository.name,
                                policy=json.dumps(lifecycle_policy()),
                                opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True))
        tag = context_tag(args.context)
        self.build: docker.RemoteImage | None = None
        self.image: docker.RegistryImage | None = None
        pushed = _registry_reader(args.region, name.lower(), tag)
        if pushed is not None:
            # This content was pushed before; its tag cannot be pushed again (see the module doc).
            self.image_uri = self.repository.repository_url.apply(lambda url: f"{url}@{pushed}")
            self.register_outputs({"repository_url": self.repository.repository_url, "image_uri": self.image_uri})
            return
        token = aws.ecr.get_authorization_token_output(registry_id=self.repository.registry_id)
        tagged = self.repository.repository_url.apply(lambda url: f"{url}:{tag}")
        self.build = docker.RemoteImage(
            f"{name}-build",
            name=tagged,
            build=docker.RemoteImageBuildArgs(
                context=str(args.context.path),
                dockerfile=str(args.context.dockerfile),
                platform=args.context.platform,  # exactly one: the function's architecture
                provenance="false",  # no attestations: one image manifest, not an index
                sbom="false",
            ),
            keep_locally=False,
            opts=child,
        )
        self.image = docker.RegistryImage(
            f"{name}-image",
            name=self.build.name,
            auth_config=docker.RegistryImageAuthConfigArgs(
                address=self.repository.repository_url.apply(lambda url: url.split("/", 1)[0]),
                username=token.user_name,
                password=pulumi.Output.secret(token.password),
            ),
            keep_remotely=True,  # a replaced image may still back a published version
            # No `triggers` on the local image id: a fresh CI runner rebuilds the same content with
            # another id, and re-pushing an existing tag fails on this IMMUTABLE repository. A push
            # happens when the content tag (the name) changes.
            opts=child,
        )
        # repository@sha256:…: the function runs exactly what was built, whatever happens to tags.
        self.image_uri = pulumi.Output.all(self.repository.repository_url, self.image.sha256_digest).apply(
            lambda values: f"{values[0]}@{values[1]}")
        self.register_outputs({"repository_url": self.repository.repository_url, "image_uri": self.image_uri})
