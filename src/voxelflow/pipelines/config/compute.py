"""``[compute]``: where the Dask work runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voxelflow.pipelines.config.checks import key, memory_size, number, positive, scheduler_address, tls_security
from voxelflow.runtime.compute import DEFAULT_CONNECT_TIMEOUT


@dataclass
class ComputeSection:
    """``[compute]``: where the Dask work runs."""

    scheduler: str = key("", scheduler_address, "a scheduler address like tcp://host:8786 (or empty)",
                         "a running Dask scheduler; it runs code in this process, so only use trusted ones")
    workers: int = key(0, number(lo=0, integer=True), "an integer >= 0 (0 = threaded scheduler in-process)")
    threads_per_worker: int = key(1, number(lo=1, integer=True), "an integer >= 1")
    memory_limit: str = key("4GB", memory_size, "a memory size > 0 such as '4GB' or '512 MiB' (or 'auto')")
    connect_timeout: float = key(DEFAULT_CONNECT_TIMEOUT, positive, "a number of seconds > 0",
                                 "how long to wait for compute.scheduler to answer")
    security: Any = key(None, tls_security, "a distributed.security.Security or a table with tls_ca_file, "
                        "tls_client_cert, tls_client_key (files) and require_encryption (bool)",
                        "TLS certificates for a tls:// scheduler")
