"""A service's container image: an ECR repository and one single-platform image, pinned by digest."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from infra.artifacts import ImageContext


@dataclass
class ContainerImageArgs:
    context: ImageContext
    keep_images: int
    force_delete: bool  # dev: a repository goes with its images; prod: deleting one is a manual step
    tags: dict[str, str]


def context_tag(context: ImageContext) -> str:
    """A tag from the context's content: tags are immutable, so new code must mean a new tag."""
    digest = hashlib.sha256()
    for path in sorted(p for p in context.path.rglob("*") if p.is_file()):
        digest.update(path.relative_to(context.path).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


class ContainerImage(pulumi.ComponentResource):
    image_uri: pulumi.Output[str]

    def __init__(self, name: str, args: ContainerImageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("collections:image:ContainerImage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.repository = aws.ecr.Repository(
            f"{name}-repo",
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
            force_delete=args.force_delete,
            tags=args.tags,
            opts=child,
        )
        # Keep the last N images: enough to roll a slot back to any recent published version.
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle", repository=self.repository.name,
            policy=json.dumps({"rules": [{
                "rulePriority": 1,
                "description": f"keep the last {args.keep_images} images",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                              "countNumber": args.keep_images},
                "action": {"type": "expire"},
            }]}),
            opts=child,
        )
        token = aws.ecr.get_authorization_token_output(registry_id=self.repository.registry_id)
        tag = context_tag(args.context)
        self.image = docker.Image(
            f"{name}-image",
            image_name=self.repository.repository_url.apply(lambda url: f"{url}:{tag}"),
            build=docker.DockerBuildArgs(
                context=str(args.context.path),
                dockerfile=str(args.context.dockerfile),
                platform=args.context.platform,  # exactly one: Lambda rejects image indexes
            ),
            registry=docker.RegistryArgs(
                server=self.repository.repository_url,
                username=token.user_name,
                password=pulumi.Output.secret(token.password),
            ),
            opts=child,
        )
        # repository@sha256:…: the function runs exactly what was built, whatever happens to tags.
        self.image_uri = self.image.repo_digest
        self.register_outputs({"repository_url": self.repository.repository_url, "image_uri": self.image_uri})
