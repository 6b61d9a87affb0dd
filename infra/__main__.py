"""`pulumi up` entry point: read the stack's config, build the stack, export the release contract.

Pulumi runs this file as a script from infra/ (Pulumi.yaml `main: infra/`); `infra` and
`services` import from the project's virtualenv, where `pip install -e .` put them.
"""

import pulumi

from infra.stack import build, read_config

outputs = build(read_config())
for key, value in outputs.items():
    pulumi.export(key, value)
