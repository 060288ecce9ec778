"""The stored format: envelope round trips, signing, key rotation, and every kind of bad
item rejected as a DeserializationError (which the backend turns into a miss)."""

from __future__ import annotations

import dataclasses
import pickle
import struct
from datetime import timedelta

import pytest
from multidict import CIMultiDict

from aiocache_http import CacheBackend, utcnow
from aiocache_http.models import CachedRequest, CachedResponse
from aiocache_http.serializers import DeserializationError, Serializer, get_format
from aiocache_http.serializers.envelope import EnvelopeFormat

NOW = utcnow()


def sample() -> CachedResponse:
    now = NOW
    request = CachedRequest("POST", "https://x.com/a?q=1", CIMultiDict({"Accept": "*/*"}), b"\x00req")
    hop = CachedResponse(302, "Found", "https://x.com/old", CIMultiDict({"Location": "/a"}), b"",
                         CachedRequest("GET", "https://x.com/old"))
    headers = CIMultiDict([("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Content-Type", "text/é")])
    return CachedResponse(201, "Créé", "https://x.com/a", headers, bytes(range(256)) * 4, request,
                          encoding="utf-8", created_at=now, expires=now + timedelta(seconds=5),
                          request_time=now, response_time=now, history=(hop,))


def assert_same(a: CachedResponse, b: CachedResponse) -> None:
    for field in ("status", "reason", "url", "body", "encoding", "created_at", "expires",
                  "request_time", "response_time"):
        assert getattr(a, field) == getattr(b, field), field
    assert list(a.headers.items()) == list(b.headers.items())
    assert (a.request.method, a.request.url, a.request.body) == (b.request.method, b.request.url,
                                                                 b.request.body)
    assert [(h.status, h.url, dict(h.headers)) for h in a.history] == [
        (h.status, h.url, dict(h.headers)) for h in b.history]


@pytest.mark.parametrize("name", ["envelope", "zlib", "pickle"])
def test_round_trip(name: str) -> None:
    s = Serializer(get_format(name), [b"k"])
    assert_same(sample(), s.loads(s.dumps(sample())))


def test_envelope_is_raw_binary_not_pickle_or_base64() -> None:
    data = Serializer(EnvelopeFormat()).dumps(sample())
    assert data.startswith(b"ACH\x02") and bytes(range(256)) * 4 in data
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(data)


@pytest.mark.parametrize("mutate", [
    lambda d: d[:-1],  # truncated
    lambda d: d + b"x",  # padded
    lambda d: d[:10],  # header only
    lambda d: b"XYZ" + d[3:],  # not ours
    lambda d: d[:3] + bytes([99]) + d[4:],  # unknown version
    lambda d: d[:4] + b"\x00" + struct.pack("!I", 3) + d[9:],  # lengths lie
    lambda d: b"",
])
def test_bad_items_rejected(mutate: object) -> None:
    s = Serializer(EnvelopeFormat())
    with pytest.raises(DeserializationError):
        s.loads(mutate(s.dumps(sample())))  # type: ignore[operator]


def test_signature_required_and_verified() -> None:
    signed = Serializer(EnvelopeFormat(), [b"secret"], b"salt")
    data = signed.dumps(sample())
    flipped = bytearray(data)
    flipped[40] ^= 1
    with pytest.raises(DeserializationError, match="signature"):
        signed.loads(bytes(flipped))
    with pytest.raises(DeserializationError, match="signature"):
        signed.loads(Serializer(EnvelopeFormat()).dumps(sample()))  # unsigned
    with pytest.raises(DeserializationError):
        Serializer(EnvelopeFormat()).loads(data)  # signed item, signing off: not misread
    with pytest.raises(DeserializationError):
        Serializer(EnvelopeFormat(), [b"secret"], b"other-salt").loads(data)


def test_key_rotation_signs_with_first_accepts_all() -> None:
    old = Serializer(EnvelopeFormat(), [b"old"])
    rotated = Serializer(EnvelopeFormat(), [b"new", b"old"])
    assert_same(sample(), rotated.loads(old.dumps(sample())))
    new_item = rotated.dumps(sample())
    assert_same(sample(), Serializer(EnvelopeFormat(), [b"new"]).loads(new_item))
    with pytest.raises(DeserializationError):
        old.loads(new_item)


def test_tampered_pickle_never_unpickled() -> None:
    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (exec, ("raise SystemExit('pwned')",))

    s = Serializer(get_format("pickle"), [b"k"])
    with pytest.raises(DeserializationError):
        s.loads(pickle.dumps(Boom()))


def test_unknown_serializer_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="serializer"):
        CacheBackend(serializer="yaml")
    with pytest.raises(TypeError, match="secret_key"):
        CacheBackend(secret_key=[""])


def test_compression_shrinks_text() -> None:
    r = dataclasses.replace(sample(), body=b"hello world " * 1000)
    plain, packed = EnvelopeFormat().dumps(r), EnvelopeFormat(compress=True).dumps(r)
    assert len(packed) < len(plain) / 10
    assert EnvelopeFormat().loads(packed).body == r.body  # the flag, not the reader, decides


class CustomFormat:
    """A user's own format (no ``whole_items``): text of repr'd fields."""

    def dumps(self, response: CachedResponse) -> bytes:
        return repr((response.status, response.url, response.body)).encode()

    def loads(self, data: bytes) -> CachedResponse:
        import ast

        status, url, body = ast.literal_eval(data.decode())
        return CachedResponse(status, "", url, CIMultiDict(), body, CachedRequest("GET", url))


@pytest.mark.parametrize("fmt", ["json", "yaml", "custom", "pickle", "safe_pickle"])
@pytest.mark.parametrize("secret", [[], [b"k"]], ids=["checksum", "signed"])
def test_large_bodies_under_a_whole_item_format_are_envelope_items(fmt: str, secret: list[bytes]) -> None:
    """With ``large_body``, a larger body is an envelope item whatever the format (a
    ``whole_items`` format, pickle, excepted), recognised on reading by its first bytes;
    a smaller one is the format's own. Both verified against their key."""
    from aiocache_http.sync.serializers import PipelineFormat, init_serializer, safe_pickle_serializer

    if fmt == "yaml":
        pytest.importorskip("yaml")
    if fmt == "custom":
        chosen: object = CustomFormat()
    else:
        pipeline = safe_pickle_serializer("s") if fmt == "safe_pickle" else init_serializer(fmt, False)
        assert pipeline is not None
        chosen = PipelineFormat(pipeline)
    s = Serializer(chosen, secret, large_body=1000)  # type: ignore[arg-type]
    small = dataclasses.replace(sample(), body=b"x" * 1000)
    large = dataclasses.replace(sample(), body=bytes(range(256)) * 4 + b"!")
    whole_items = "pickle" in fmt
    assert s.streams is not whole_items
    for response in (small, large):
        data = s.dumps(response, "key")
        assert data.startswith(b"ACH\x02") is (response is large and not whole_items)
        assert s.loads(data, "key").body == response.body
        with pytest.raises(DeserializationError):
            s.loads(data, "another key")
        for cut in (data[:-1], data[:40], data[:4]):
            with pytest.raises(DeserializationError):
                s.loads(cut, "key")
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0x01
        with pytest.raises(DeserializationError):
            s.loads(bytes(flipped), "key")
    # A serializer without large_body (a storage used on its own) reads them all the same.
    alone = Serializer(chosen, secret)  # type: ignore[arg-type]
    assert alone.loads(s.dumps(large, "key"), "key").body == large.body
