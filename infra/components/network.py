"""VPC for the functions and the database: private subnets, NAT for egress (AI APIs, AWS APIs)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.config import NetworkConfig


@dataclass
class NetworkArgs:
    config: NetworkConfig
    availability_zones: list[str]
    region: str
    tags: dict[str, str]


class Network(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("collections:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config, zones = args.config, args.availability_zones[: args.config.az_count]
        if len(zones) < config.az_count:
            raise ValueError(f"the region has {len(zones)} availability zones; network.azCount is {config.az_count}")
        # /20s: public ones first, private ones after, so adding an AZ never renumbers a subnet.
        blocks = list(ipaddress.ip_network(config.cidr).subnets(new_prefix=min(28, ipaddress.ip_network(
            config.cidr).prefixlen + 4)))

        self.vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=config.cidr, enable_dns_hostnames=True,
                               enable_dns_support=True, tags={**args.tags, "Name": f"{name}-vpc"}, opts=child)
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, tags=args.tags, opts=child)
        public_routes = aws.ec2.RouteTable(
            f"{name}-public", vpc_id=self.vpc.id, tags=args.tags,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=gateway.id)], opts=child,
        )
        public, private, nats, private_routes, private_associations = [], [], [], [], []
        for index, zone in enumerate(zones):
            subnet = aws.ec2.Subnet(f"{name}-public-{zone}", vpc_id=self.vpc.id, availability_zone=zone,
                                    cidr_block=str(blocks[index]), map_public_ip_on_launch=False,
                                    tags={**args.tags, "Name": f"{name}-public-{zone}"}, opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-public-{zone}", subnet_id=subnet.id,
                                          route_table_id=public_routes.id, opts=child)
            public.append(subnet)
        # prod: a NAT per AZ, so losing one AZ does not cut the others' egress; dev: one, cheaper.
        for index in range(config.nat_gateways):
            zone = zones[index]
            eip = aws.ec2.Eip(f"{name}-nat-{zone}", domain="vpc", tags=args.tags, opts=child)
            nats.append(aws.ec2.NatGateway(f"{name}-nat-{zone}", allocation_id=eip.id, subnet_id=public[index].id,
                                           tags={**args.tags, "Name": f"{name}-nat-{zone}"},
                                           opts=pulumi.ResourceOptions(parent=self, depends_on=[gateway])))
        for index, zone in enumerate(zones):
            subnet = aws.ec2.Subnet(f"{name}-private-{zone}", vpc_id=self.vpc.id, availability_zone=zone,
                                    cidr_block=str(blocks[len(blocks) // 2 + index]),
                                    tags={**args.tags, "Name": f"{name}-private-{zone}"}, opts=child)
            nat = nats[index] if index < len(nats) else nats[0]
            routes = aws.ec2.RouteTable(
                f"{name}-private-{zone}", vpc_id=self.vpc.id, tags=args.tags,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)], opts=child,
            )
            association = aws.ec2.RouteTableAssociation(f"{name}-private-{zone}", subnet_id=subnet.id,
                                                        route_table_id=routes.id, opts=child)
            private.append(subnet)
            private_routes.append(routes)
            private_associations.append(association)
        # Originals and thumbnails are the bulk of the traffic: a (free) gateway endpoint keeps it
        # off the NAT gateways.
        aws.ec2.VpcEndpoint(f"{name}-s3", vpc_id=self.vpc.id, service_name=f"com.amazonaws.{args.region}.s3",
                            vpc_endpoint_type="Gateway", route_table_ids=[r.id for r in private_routes],
                            tags=args.tags, opts=child)

        # Functions talk out only; the database accepts them and nothing else.
        self.functions_security_group = aws.ec2.SecurityGroup(
            f"{name}-functions", vpc_id=self.vpc.id, description="Collections Lambda functions",
            egress=[aws.ec2.SecurityGroupEgressArgs(protocol="-1", from_port=0, to_port=0,
                                                    cidr_blocks=["0.0.0.0/0"])],
            tags=args.tags, opts=child,
        )
        self.private_subnet_ids = [s.id for s in private]
        self.public_subnet_ids = [s.id for s in public]
        self.nat_gateway_count = len(nats)
        # The private subnets' way out (NAT gateways, their routes, the subnets' associations): a
        # function that must reach AWS APIs or the AI providers during the deploy waits for these.
        self.egress: list[pulumi.Resource] = [*nats, *private_routes, *private_associations]
        self.register_outputs({"vpc_id": self.vpc.id, "private_subnet_ids": self.private_subnet_ids})
