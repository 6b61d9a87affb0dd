"""Alembic environment: the URL comes from the caller (services/core/migrations/__init__.py)."""

from alembic import context
from sqlalchemy import create_engine, pool

from services.core.database import normalize_url
from services.core.models import Base

config = context.config
target_metadata = Base.metadata

# The role's statement_timeout (migration 0003) is for requests, not for building an index on a
# large table. SET LOCAL lasts for this transaction; through RDS Proxy it pins the migrate
# function's one short-lived connection, which is harmless (the hot paths never SET).
NO_STATEMENT_TIMEOUT = "SET LOCAL statement_timeout = 0"
# Role defaults (migration 0003) reach connections opened after they were set. This one was opened
# before, and a pooler (PgBouncer, RDS Proxy) may hand its server connection to the services next:
# it takes them on before it goes back (database-specific ones last, as PostgreSQL ranks them).
ADOPT_ROLE_DEFAULTS = """
SELECT set_config(split_part(setting, '=', 1), substr(setting, strpos(setting, '=') + 1), false)
FROM pg_db_role_setting AS defaults CROSS JOIN LATERAL unnest(defaults.setconfig) AS setting
WHERE defaults.setrole = (SELECT oid FROM pg_roles WHERE rolname = current_user)
  AND defaults.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
ORDER BY defaults.setdatabase
"""


def run_migrations_offline() -> None:
    context.configure(url=normalize_url(config.get_main_option("sqlalchemy.url")), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.execute(NO_STATEMENT_TIMEOUT)
            context.run_migrations()
            context.execute(ADOPT_ROLE_DEFAULTS)
        return
    engine = create_engine(normalize_url(config.get_main_option("sqlalchemy.url")), poolclass=pool.NullPool,
                           connect_args={"prepare_threshold": None})  # as services/core/database.py
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata)
        with context.begin_transaction():
            context.execute(NO_STATEMENT_TIMEOUT)
            context.run_migrations()
            context.execute(ADOPT_ROLE_DEFAULTS)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
