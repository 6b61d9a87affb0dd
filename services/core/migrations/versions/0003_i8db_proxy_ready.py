"""Ready for a connection pooler (RDS Proxy): session settings as role defaults, row locks for stages.

Revision ID: 0003_i8db
Revises: 0002
Create Date: 2026-12-02

1. Role defaults. RDS Proxy refuses startup `options` and pins a client session to one database
   connection on `SET` (also `SET LOCAL`/`set_config`: the RDS User Guide lists "Using SET
   commands" and "setting parameters" among the conditions that cause pinning for PostgreSQL, with
   no exception for transaction-local ones). So what the services need in every session is the
   default of the role they connect as, which PostgreSQL applies when each database connection
   starts, proxy or not:
   - statement_timeout (COLLECTIONS_DB_STATEMENT_TIMEOUT_MS, read when this migration runs);
   - hnsw.iterative_scan = relaxed_order, so an HNSW scan filtered to one owner keeps scanning
     until it has k rows, whatever k (pgvector >= 0.8), and hnsw.ef_search = 40 (pgvector's
     default, stated). One value now serves every k: the search used to SET LOCAL 2 x k per
     query; with the largest k's 200 for all, `make bench` measured GET /search p50 at 260 ms
     against 26 ms with 40 (100,000 items, 1024-d), while recall@10 stays 0.96.
   The role is the one running the migrations, which on AWS is the role in the connection secret
   that every function uses. Defaults apply to connections opened afterwards; RDS Proxy replaces
   its database connections over time (at the latest about 24 hours after they stop being used).
   To change a value later, add a migration (a new one is what makes the deploy run `migrate`).
2. pipeline_locks: one row per lock name, locked with SELECT ... FOR UPDATE [SKIP LOCKED] by the
   pipeline stages instead of advisory locks ("Interacting with locks using functions such as
   pg_advisory_lock" pins too). Row locks are transaction state, never session state. Each row
   belongs to an item and goes with it.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.core.settings import get_settings

revision = "0003_i8db"
down_revision = "0002"
branch_labels = None
depends_on = None

HNSW_EF_SEARCH = 40
ROLE_SETTINGS = ("statement_timeout", "hnsw.ef_search", "hnsw.iterative_scan")


def role_defaults() -> dict[str, str]:
    settings = get_settings()
    return {
        "statement_timeout": str(int(settings.db_statement_timeout_ms)),  # a bare number is milliseconds
        "hnsw.ef_search": str(HNSW_EF_SEARCH),
        "hnsw.iterative_scan": "relaxed_order",
    }


def upgrade() -> None:
    # Load pgvector in this session so ALTER ROLE checks hnsw.* as the user-settable parameters they
    # are (an unloaded extension's parameter would be stored as an unchecked placeholder).
    op.execute("SELECT '[1]'::vector")
    for name, value in role_defaults().items():
        op.execute(f"ALTER ROLE CURRENT_USER SET {name} = '{value}'")

    op.create_table(
        "pipeline_locks",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column(
            "item_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("items.id", ondelete="CASCADE"),
            nullable=False,
        ),
    )
    op.create_index("ix_pipeline_locks_item_id", "pipeline_locks", ["item_id"])


def downgrade() -> None:
    op.drop_index("ix_pipeline_locks_item_id", table_name="pipeline_locks")
    op.drop_table("pipeline_locks")
    for name in ROLE_SETTINGS:
        op.execute(f"ALTER ROLE CURRENT_USER RESET {name}")
