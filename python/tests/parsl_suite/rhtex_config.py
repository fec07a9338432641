"""A Parsl test-harness config (``pytest --config rhtex_config.py``) for
Parsl's generic tests: RhtexExecutor with a private interchange and one
pool-manager of 8 synthetic nodes; apps without a resource specification
run as serial tasks (1 node, 1 rank)."""

from parsl.config import Config

from rhtex.parsl import RhtexExecutor


def fresh_config() -> Config:
    return Config(
        executors=[
            RhtexExecutor(
                label="RhtexExecutor",
                nodes=[f"rhtex-node-{i}" for i in range(1, 9)],
                require_resource_spec=False,
            )
        ]
    )
