"""The database's connection limit as the program sets it, and the RDS Proxy's share of it.

services/catalog.py sizes the model stages' reserved concurrency from DATABASE_MAX_CONNECTIONS. The RDS
stacks make that figure the database's real limit: the instance's DB parameter group sets `max_connections`
to it (infra/components/database.py), instead of RDS's default `LEAST({DBInstanceClassMemory/9531392}, 5000)`,
whose DBInstanceClassMemory is the class's memory less an undocumented amount "reserved for the operating
system and RDS management processes" (RDS User Guide, "Maximum number of database connections").

A class must afford the figure (`check_instance_class`, called by config validation; fail closed):
- its memory must be in INSTANCE_MEMORY_GIB (the RDS User Guide's "Hardware specifications for DB instance
  classes"); an unknown class is refused, not guessed;
- the figure must not exceed what RDS's own default formula gives for USABLE_MEMORY_SHARE of that memory.
  The one worked figure the RDS User Guide gives ("Maximum number of database connections": 16 GiB, after
  the subtraction, gives "around 1,300" where the nominal memory gives 1,365) puts the reserve near 5 % for a
  16 GiB class; a small class keeps a larger share for the OS, and the guide gives no figure for it, so the
  margin assumed here is a quarter. Too high a `max_connections` for the memory can leave an instance in
  `incompatible-parameters` (same page).

`max_connections` is a static parameter ("Type: Static (applying changes requires a reboot)", AWS Prescriptive
Guidance, "Tuning PostgreSQL parameters: max_connections"): the group sets it with apply method
`pending-reboot`, which RDS requires of static parameters. A new instance starts with it; an existing one
keeps its old limit until it is rebooted (README, "Connection budget and reserved concurrency").

RDS Proxy: MaxConnectionsPercent is "a percentage of the max_connections setting for the RDS DB instance"
(RDS API Reference, ConnectionPoolConfiguration; default 100). With the proxy on, every function reaches the
database through it, so the proxy may take the functions' whole share and no more: the limit less the slots
RDS reserves and the operators' connections (services/catalog.py), which stay for direct sessions. With
max_connections set in the parameter group, the pool no longer moves with the instance class ("RDS Proxy
configuration guidelines": an implicit limit changes with the class, and the proxy's pool with it).
"""

from __future__ import annotations

import math

from services import catalog

# RDS for PostgreSQL's default divisor: max_connections = LEAST({DBInstanceClassMemory/9531392}, 5000).
DEFAULT_BYTES_PER_CONNECTION = 9531392
DEFAULT_MAX_CONNECTIONS_CAP = 5000
USABLE_MEMORY_SHARE = 0.75  # our margin for DBInstanceClassMemory / nominal memory (see the module docstring)

# Nominal memory (GiB) per instance class, from the RDS User Guide's "Hardware specifications for DB instance
# classes". A class not listed is refused: add its memory from that table rather than guessing.
INSTANCE_MEMORY_GIB = {
    "db.t4g.micro": 1, "db.t4g.small": 2, "db.t4g.medium": 4, "db.t4g.large": 8, "db.t4g.xlarge": 16,
    "db.t4g.2xlarge": 32, "db.m7g.large": 8, "db.m7g.xlarge": 16, "db.m7g.2xlarge": 32, "db.m7g.4xlarge": 64,
    "db.r7g.large": 16, "db.r7g.xlarge": 32, "db.r7g.2xlarge": 64, "db.r7g.4xlarge": 128,
}


class UnaffordableConnections(ValueError):
    """The instance class is unknown, or too small for the connection limit the catalog states."""


def affordable_max_connections(instance_class: str) -> int:
    """The most connections RDS's default formula would give the class with USABLE_MEMORY_SHARE of its memory."""
    try:
        gib = INSTANCE_MEMORY_GIB[instance_class]
    except KeyError:
        raise UnaffordableConnections(
            f"{instance_class!r}: its memory is not in infra/connection_budget.py INSTANCE_MEMORY_GIB, so whether it "
            f"affords max_connections = {catalog.DATABASE_MAX_CONNECTIONS} is unknown; add it from the RDS User "
            "Guide's \"Hardware specifications for DB instance classes\""
        ) from None
    usable_bytes = gib * 2**30 * USABLE_MEMORY_SHARE
    return min(math.floor(usable_bytes / DEFAULT_BYTES_PER_CONNECTION), DEFAULT_MAX_CONNECTIONS_CAP)


def check_instance_class(instance_class: str, max_connections: int = catalog.DATABASE_MAX_CONNECTIONS) -> None:
    """Refuse a class that is unknown or cannot afford `max_connections` (UnaffordableConnections)."""
    affordable = affordable_max_connections(instance_class)
    if max_connections > affordable:
        raise UnaffordableConnections(
            f"{instance_class!r} affords about {affordable} connections (RDS's default formula on "
            f"{USABLE_MEMORY_SHARE:.0%} of its {INSTANCE_MEMORY_GIB[instance_class]} GiB), fewer than "
            f"max_connections = {max_connections} (services/catalog.py DATABASE_MAX_CONNECTIONS); use a larger "
            "class, or lower the budget (the model stages' reserved concurrency follows it)"
        )


def parameter_group_family(engine_version: str) -> str:
    """The DB parameter group family of a PostgreSQL engine version: "17" or "17.4" → "postgres17"."""
    major = engine_version.split(".", 1)[0]
    if not major.isdigit():
        raise ValueError(f"PostgreSQL engine version {engine_version!r} has no major version")
    return f"postgres{major}"


def proxy_connection_limit(max_connections: int = catalog.DATABASE_MAX_CONNECTIONS) -> int:
    """The most database connections the RDS Proxy may hold: what is left after RDS's reserved slots and the
    operators' direct sessions (every function, migrate and cleanup too, goes through the proxy)."""
    return max_connections - catalog.RDS_RESERVED_CONNECTIONS - catalog.OPERATOR_CONNECTIONS


def proxy_max_connections_percent(max_connections: int = catalog.DATABASE_MAX_CONNECTIONS) -> int:
    """The largest whole MaxConnectionsPercent whose pool, rounded up, stays within `proxy_connection_limit`
    (how RDS rounds the percentage is not documented: assume up)."""
    limit = proxy_connection_limit(max_connections)
    percent = math.floor(100 * limit / max_connections)
    while percent > 1 and math.ceil(max_connections * percent / 100) > limit:
        percent -= 1
    if percent < 1 or math.ceil(max_connections * percent / 100) > limit:
        raise ValueError(f"max_connections = {max_connections} leaves the RDS Proxy no connections")
    return percent


def proxy_max_idle_connections_percent(max_connections: int = catalog.DATABASE_MAX_CONNECTIONS) -> int:
    """Half of MaxConnectionsPercent: the API's documented default, stated so the plan shows it (it must lie
    between 0 and MaxConnectionsPercent, and setting it requires MaxConnectionsPercent to be set too)."""
    return proxy_max_connections_percent(max_connections) // 2
