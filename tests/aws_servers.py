"""A local DynamoDB for the tests: moto's ThreadedMotoServer on a free loopback port.

The backends talk to it through the real aiobotocore client with dummy credentials, so
every request goes over HTTP as it would to AWS.
"""

from __future__ import annotations

import logging
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


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per request
    # port 0: the server binds a free port itself (a port found free and bound later may be
    # taken meanwhile by another test run, or another pytest-xdist worker)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=30):  # up and answering
        pass
    try:
        yield MotoServer(url)
    finally:
        server.stop()
