"""`pulumi up` entry point: read the stack's config, build the stack, export the release contract.

Pulumi runs this file as a script from infra/ (Pulumi.yaml `main: infra/`); `infra` and
`services` import from the project's virtualenv, where `pip install -e .` put them.
"""

import pulumi

from infra.engine import require_engine_features
from infra.stack import build, read_config

require_engine_features()  # before any registration: one clear line on an old CLI
outputs = build(read_config())
for key, value in outputs.items():
    pulumi.export(key, value)
