"""PostgreSQL for the items and their embeddings, and the secrets the functions read.

`rds`: an RDS PostgreSQL 17 instance in the private subnets, reachable only from the functions'
security group; its connection secret carries host/port/username/password/dbname (the shape
services/core/database.py reads), pointing at the RDS Proxy when one is asked for.
`external`: a database elsewhere; the secret carries {"url": ...}.
pgvector is created by the first migration, which the migrate function applies on deploy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import connection_budget, iam
from infra.config import DatabaseConfig
from services import catalog


@dataclass
class DatabaseArgs:
    config: DatabaseConfig
    password: pulumi.Output[str] | None  # rds mode
    url: pulumi.Output[str] | None  # external mode
    vpc_id: pulumi.Input[str]
    subnet_ids: list[pulumi.Input[str]]
    client_security_group_id: pulumi.Input[str]
    deletion_protection: bool
    tags: dict[str, str]


class Database(pulumi.ComponentResource):
    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("collections:database:Database", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = args.config
        self.secret = aws.secretsmanager.Secret(
            f"{name}-connection", description="Collections database connection", tags=args.tags, opts=child,
        )
        self.instance: aws.rds.Instance | None = None
        self.proxy: aws.rds.Proxy | None = None
        # What a client needs in place before its first connection: the connection secret's
        # value, and in rds mode the instance (and the proxy's registered target). The deploy's
        # migrate invocation depends on these explicitly (see infra/stack.py).
        self.ready: list[pulumi.Resource] = []
        if config.mode == "external":
            if args.url is None:
                raise ValueError("database.mode is external but collections:databaseUrl is not set")
            connection = aws.secretsmanager.SecretVersion(
                f"{name}-connection", secret_id=self.secret.id,
                secret_string=pulumi.Output.secret(args.url).apply(lambda url: json.dumps({"url": url})),
                opts=child,
            )
            self.ready = [connection]
            self.register_outputs({"secret_arn": self.secret.arn})
            return
        if args.password is None:
            raise ValueError("database.mode is rds but collections:databasePassword is not set")

        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-postgres", vpc_id=args.vpc_id, description="Collections PostgreSQL: functions only",
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(protocol="tcp", from_port=5432, to_port=5432,
                                                 security_groups=[args.client_security_group_id]),
                # The RDS Proxy sits in this group too and must reach the instance.
                *([aws.ec2.SecurityGroupIngressArgs(protocol="tcp", from_port=5432, to_port=5432, self=True)]
                  if config.proxy else []),
            ],
            egress=[aws.ec2.SecurityGroupEgressArgs(protocol="-1", from_port=0, to_port=0,
                                                    cidr_blocks=["0.0.0.0/0"])],
            tags=args.tags, opts=child,
        )
        subnets = aws.rds.SubnetGroup(f"{name}-subnets", subnet_ids=args.subnet_ids, tags=args.tags, opts=child)
        # max_connections is the catalog's budget, not RDS's class-dependent default (infra/connection_budget.py;
        # config validation refused a class that cannot afford it). It is static: `pending-reboot` is the apply
        # method RDS accepts for it, and an existing instance takes the group's value at its next reboot.
        self.parameter_group = aws.rds.ParameterGroup(
            f"{name}-postgres",
            family=connection_budget.parameter_group_family(config.engine_version),
            description="Collections PostgreSQL: max_connections is the connection budget (services/catalog.py)",
            parameters=[aws.rds.ParameterGroupParameterArgs(
                name="max_connections", value=str(catalog.DATABASE_MAX_CONNECTIONS), apply_method="pending-reboot",
            )],
            tags=args.tags, opts=child,
        )
        self.instance = aws.rds.Instance(
            f"{name}-postgres",
            engine="postgres",
            engine_version=config.engine_version,
            instance_class=config.instance_class,
            allocated_storage=config.allocated_storage_gb,
            max_allocated_storage=config.max_allocated_storage_gb,
            storage_type="gp3",
            storage_encrypted=True,
            db_name=config.name,
            username=config.username,
            password=args.password,
            db_subnet_group_name=subnets.name,
            parameter_group_name=self.parameter_group.name,
            vpc_security_group_ids=[self.security_group.id],
            publicly_accessible=False,
            multi_az=config.multi_az,
            backup_retention_period=config.backup_retention_days,
            auto_minor_version_upgrade=True,
            deletion_protection=args.deletion_protection,
            # A protected (prod) database keeps a final snapshot; a dev one goes quietly.
            skip_final_snapshot=not args.deletion_protection,
            final_snapshot_identifier=f"{name}-final" if args.deletion_protection else None,
            copy_tags_to_snapshot=True,
            tags=args.tags,
            opts=child,
        )
        host = self.instance.address
        self.proxy_target: aws.rds.ProxyTarget | None = None
        if config.proxy:
            host = self._proxy(name, args, child)
        connection = aws.secretsmanager.SecretVersion(
            f"{name}-connection", secret_id=self.secret.id,
            secret_string=pulumi.Output.all(host, self.instance.port, args.password).apply(
                lambda values: json.dumps({
                    "engine": "postgres", "host": values[0], "port": values[1], "username": config.username,
                    "password": values[2], "dbname": config.name,
                })
            ),
            opts=child,
        )
        self.ready = [connection, self.instance, *([self.proxy_target] if self.proxy_target is not None else [])]
        self.register_outputs({"secret_arn": self.secret.arn, "endpoint": self.instance.address})

    def _proxy(self, name: str, args: DatabaseArgs, child: pulumi.ResourceOptions) -> pulumi.Output[str]:
        """RDS Proxy pools connections: many short-lived Lambda containers, few database sessions."""
        assert self.instance is not None
        credentials = aws.secretsmanager.Secret(f"{name}-proxy-auth", tags=args.tags, opts=child)
        aws.secretsmanager.SecretVersion(
            f"{name}-proxy-auth", secret_id=credentials.id,
            secret_string=pulumi.Output.secret(args.password).apply(
                lambda password: json.dumps({"username": args.config.username, "password": password})),
            opts=child,
        )
        role = aws.iam.Role(f"{name}-proxy", assume_role_policy=iam.assume_role_policy(("rds.amazonaws.com",)),
                            tags=args.tags, opts=child)
        aws.iam.RolePolicy(
            f"{name}-proxy", role=role.id,
            policy=credentials.arn.apply(lambda arn: json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": [arn]}],
            })),
            opts=child,
        )
        self.proxy = aws.rds.Proxy(
            f"{name}-proxy", engine_family="POSTGRESQL", require_tls=True, role_arn=role.arn,
            vpc_subnet_ids=args.subnet_ids, vpc_security_group_ids=[self.security_group.id],
            auths=[aws.rds.ProxyAuthArgs(auth_scheme="SECRETS", iam_auth="DISABLED", secret_arn=credentials.arn)],
            tags=args.tags, opts=child,
        )
        # No connection_pool_config.init_query: the session settings the services need (statement_timeout,
        # hnsw.*) are role defaults set by migration 0003, which PostgreSQL applies to every connection the
        # proxy opens. The RDS User Guide said "Initialization query is not currently supported for
        # PostgreSQL" (awsdocs/amazon-rds-user-guide, rds-proxy-managing.md), and clients must not SET
        # either: RDS Proxy pins a session on SET (services/core/database.py).
        # The proxy's pool is a share of max_connections (the catalog's budget): all of the functions' connections,
        # none of the slots RDS reserves or the operators' (infra/connection_budget.py). Updated in place
        # (ModifyDBProxyTargetGroup; only db_proxy_name replaces the group: infra/plan.py REPLACEMENTS).
        group = aws.rds.ProxyDefaultTargetGroup(
            f"{name}-proxy", db_proxy_name=self.proxy.name,
            connection_pool_config=aws.rds.ProxyDefaultTargetGroupConnectionPoolConfigArgs(
                max_connections_percent=connection_budget.proxy_max_connections_percent(),
                max_idle_connections_percent=connection_budget.proxy_max_idle_connections_percent(),
            ),
            opts=child,
        )
        # Connections through the proxy fail until the instance is registered as its target.
        self.proxy_target = aws.rds.ProxyTarget(
            f"{name}-proxy", db_proxy_name=self.proxy.name, target_group_name=group.name,
            db_instance_identifier=self.instance.identifier, opts=child)
        return self.proxy.endpoint
