"""A local DynamoDB for the tests: moto's ThreadedMotoServer on a free loopback port.

The backends talk to it through the real aiobotocore client with dummy credentials, so
every request goes over HTTP as it would to AWS.
"""

from __future__ import annotations

import logging
import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# Passed explicitly to every client: botocore never looks for real credentials (or asks
# the instance metadata service) during tests.
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
REGION = "us-east-1"


@dataclass(frozen=True)
class MotoServer:
    endpoint_url: str

    def client_options(self) -> dict[str, Any]:
        return {"region_name": REGION, "endpoint_url": self.endpoint_url, **DUMMY_CREDENTIALS}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per request
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=30):  # up and answering
        pass
    try:
        yield MotoServer(url)
    finally:
        server.stop()
