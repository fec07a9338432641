"""rhtex: a Python client for the rhtex pilot system, and a Parsl executor.

- :mod:`rhtex.protocol`: every message of ``proto/PROTOCOL.md`` (version 2);
- :mod:`rhtex.spec`: resource-specification rules (section 8);
- :mod:`rhtex.keys`: CURVE key files;
- :mod:`rhtex.client`: :class:`~rhtex.client.Client`, futures for tasks;
- :mod:`rhtex.local`: a private interchange and pool-manager started from Python;
- :mod:`rhtex.parsl`: :class:`~rhtex.parsl.RhtexExecutor` (needs ``rhtex[parsl]``);
- :mod:`rhtex.runner`: runs one Parsl task on a block's lead node.
"""

__version__ = "0.1.0"
