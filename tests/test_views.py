"""backend.responses / backend.redirects show decoded values, as both peers' storages do;
the byte-level storages stay reachable as raw_responses / raw_redirects."""

from __future__ import annotations

from multidict import CIMultiDict

from aiocache_http import CacheBackend
from aiocache_http.backends.memory import MemoryCache
from aiocache_http.models import CachedRequest, CachedResponse
from aiocache_http.response import CachedClientResponse

from .conftest import BackendMaker


def _response(url: str) -> CachedResponse:
    return CachedResponse(200, "OK", url, CIMultiDict({"X": "1"}), b"body", CachedRequest("GET", url))


async def test_views_decode_on_every_backend(make_backend: BackendMaker) -> None:
    backend = make_backend()
    await backend.clear()
    await backend.responses.write("k", _response("http://127.0.0.1/a"))
    await backend.redirects.write("alias", "k")

    stored = await backend.responses.read("k")
    # the replayed response, as the peers' storages give theirs (the record is inside)
    assert isinstance(stored, CachedClientResponse) and stored.body == b"body" and stored.cache_key == "k"
    assert [str(r.url) for r in await backend.responses.values()] == ["http://127.0.0.1/a"]
    assert await backend.responses.keys() == ["k"]
    assert await backend.responses.contains("k") and await backend.responses.size() == 1
    assert await backend.responses.read("alias") is None  # a view reads its own key only
    assert await backend.redirects.read("alias") == "k"
    assert await backend.redirects.values() == ["k"]
    assert isinstance(await backend.raw_responses.read("k"), bytes)

    await backend.responses.delete("k")
    assert await backend.responses.read("k") is None and await backend.responses.size() == 0


async def test_assigning_a_storage_sets_the_raw_storage() -> None:
    backend = CacheBackend()
    store = MemoryCache()
    backend.responses = store
    assert backend.raw_responses is store
    assert backend.responses.max_entries is None  # storage attributes are reachable on the view
