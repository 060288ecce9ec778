"""requests-cache's serializers: pipelines of stages, by name or as objects.

    CachedSession("cache", backend="filesystem", serializer="json")
    CachedSession(backend=FileCache("cache", serializer=yaml_serializer))

A pipeline turns a response into a plain dict (:class:`CattrStage`, the first stage),
then into its format (JSON, YAML, BSON, pickle...), stage by stage, and back. Values
that are not responses pass the first stage unchanged, so a storage can hold them too.
The default stays the binary envelope (no pickle): ``serializer="pickle"`` or
``pickle_serializer`` are opt-ins (with ``safe_pickle_serializer`` signing each item).

A format whose library is missing (``yaml``, ``bson``, ``ujson``, ``orjson``) is a
placeholder that raises ImportError, naming the package, when it is used.
"""

from __future__ import annotations

import base64
import json
import pickle
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from importlib import import_module
from typing import Any

from multidict import CIMultiDict

from ..backends.values import decode_value, encode_value
from ..models import CachedRequest, CachedResponse, utcnow
from ..models.convert import as_record
from ..serializers import DeserializationError

_RESPONSE_FIELDS = frozenset({"status_code", "url", "headers", "request"})
_TEXT_TYPES = ("text/", "application/xml", "application/javascript")


def _is_response(value: Any) -> bool:
    return isinstance(value, CachedResponse) or hasattr(value, "__cache_record__") or (
        hasattr(value, "status_code") and hasattr(value, "request") and hasattr(value, "headers"))


class Stage:
    """One step of a pipeline: ``dumps`` on the way in, ``loads`` on the way out (each a
    function, or the name of a method of ``obj``)."""

    def __init__(self, obj: Any = None, dumps: str | Callable[[Any], Any] = "dumps",
                 loads: str | Callable[[Any], Any] = "loads") -> None:
        self.obj = obj
        self.dumps: Callable[[Any], Any] = getattr(obj, dumps) if isinstance(dumps, str) else dumps
        self.loads: Callable[[Any], Any] = getattr(obj, loads) if isinstance(loads, str) else loads

    def copy(self) -> Stage:
        return Stage(self.obj, self.dumps, self.loads)


class CattrStage(Stage):
    """Response <-> dict of plain values. ``bytes_as`` and ``times_as`` fit the dict to the
    format after it: ``"base64"`` / ``"iso"`` strings for JSON, native values otherwise.

    ``decode_content`` (requests-cache's setting) stores JSON bodies as JSON and text
    bodies as text, so a JSON or YAML file is readable; the body is re-encoded on load.
    """

    def __init__(self, bytes_as: str = "bytes", times_as: str = "datetime",
                 decode_content: bool = False) -> None:
        super().__init__(None, self._dumps, self._loads)
        self.bytes_as, self.times_as, self.decode_content = bytes_as, times_as, decode_content

    def copy(self) -> CattrStage:
        return CattrStage(self.bytes_as, self.times_as, self.decode_content)

    # -- bytes and times, as the next stage can hold them ------------------------------
    def _b(self, value: bytes) -> Any:
        return base64.b64encode(value).decode() if self.bytes_as == "base64" else value

    def _unb(self, value: Any) -> bytes:
        if isinstance(value, str):
            return base64.b64decode(value)
        return bytes(value) if value is not None else b""

    def _t(self, value: datetime | None) -> Any:
        return value.isoformat() if value is not None and self.times_as == "iso" else value

    @staticmethod
    def _unt(value: Any) -> datetime | None:
        return datetime.fromisoformat(value) if isinstance(value, str) else value

    # -- the stage --------------------------------------------------------------------
    def _dumps(self, value: Any) -> Any:
        if not _is_response(value):
            return value
        return self._unstructure(as_record(value))

    def _unstructure(self, r: CachedResponse) -> dict[str, Any]:
        q = r.request
        doc: dict[str, Any] = {
            "status_code": r.status, "reason": r.reason, "url": r.url,
            "headers": [[str(k), str(v)] for k, v in r.headers.items()], "encoding": r.encoding,
            "created_at": self._t(r.created_at), "expires": self._t(r.expires),
            "request_time": self._t(r.request_time), "response_time": self._t(r.response_time),
            "cache_key": r.cache_key, "vary_generation": r.vary_generation,
            "request": {"method": q.method, "url": q.url,
                        "headers": [[str(k), str(v)] for k, v in q.headers.items()], "body": self._b(q.body)},
            "history": [self._unstructure(h) for h in r.history],
        }
        decoded = self._decoded(r) if self.decode_content else None
        if decoded is not None:
            doc["_decoded_content"] = decoded
        else:
            doc["content"] = self._b(r.body)
        return doc

    @staticmethod
    def _decoded(r: CachedResponse) -> Any:
        content_type = r.headers.get("Content-Type", "").split(";")[0].strip().lower()
        encoding = r.encoding or "utf-8"
        try:
            text = r.body.decode(encoding)
            if not text.strip():
                return None
            if content_type == "application/json" or content_type.endswith("+json"):
                return {"json": json.loads(text)}
            if content_type.startswith(_TEXT_TYPES):
                return {"text": text}
        except (UnicodeDecodeError, LookupError, ValueError):
            pass
        return None

    def _loads(self, value: Any) -> Any:
        if not isinstance(value, Mapping) or not set(value) >= _RESPONSE_FIELDS:
            return value
        return self._structure(value)

    def _structure(self, doc: Mapping[str, Any]) -> CachedResponse:
        q = doc["request"]
        headers = CIMultiDict((str(k), str(v)) for k, v in doc["headers"])
        encoding = doc.get("encoding")
        if "_decoded_content" in doc:
            decoded = doc["_decoded_content"]
            if "json" in decoded:
                body = json.dumps(decoded["json"]).encode(encoding or "utf-8")
            else:
                body = str(decoded["text"]).encode(encoding or "utf-8")
        else:
            body = self._unb(doc.get("content"))
        return CachedResponse(
            status=int(doc["status_code"]), reason=doc.get("reason") or "", url=doc["url"],
            headers=headers, body=body,
            request=CachedRequest(q["method"], q["url"],
                                  CIMultiDict((str(k), str(v)) for k, v in q["headers"]),
                                  self._unb(q.get("body"))),
            encoding=encoding, created_at=self._unt(doc.get("created_at")) or utcnow(),
            expires=self._unt(doc.get("expires")),
            request_time=self._unt(doc.get("request_time")),
            response_time=self._unt(doc.get("response_time")),
            history=tuple(self._structure(h) for h in doc.get("history") or ()),
            cache_key=doc.get("cache_key") or "", vary_generation=doc.get("vary_generation") or "",
        )


class SerializerPipeline:
    """Stages run in order by ``dumps`` and in reverse by ``loads``.

    Args:
        stages: :class:`Stage` objects, or anything with ``dumps`` and ``loads``.
        name: Shown in ``repr`` and used for file extensions.
        is_binary: Whether ``dumps`` returns bytes (else str).
    """

    def __init__(self, stages: Sequence[Any], name: str | None = None, is_binary: bool = False) -> None:
        self.stages = list(stages)
        self.name = name
        self.is_binary = is_binary

    def copy(self) -> SerializerPipeline:
        return SerializerPipeline([s.copy() if hasattr(s, "copy") else s for s in self.stages],
                                  self.name, self.is_binary)

    def dumps(self, value: Any) -> Any:
        for stage in self.stages:
            value = stage.dumps(value)
        return value

    def loads(self, value: Any) -> Any:
        for stage in reversed(self.stages):
            value = stage.loads(value)
        return value

    def set_decode_content(self, decode_content: bool) -> None:
        """Set ``decode_content`` on the stages that have it (the first, usually)."""
        for stage in self.stages:
            if hasattr(stage, "decode_content"):
                stage.decode_content = decode_content

    def __repr__(self) -> str:
        return f"SerializerPipeline(name={self.name}, n_stages={len(self.stages)})"


class _Missing:
    """A serializer whose library is not installed: fails when used, naming it."""

    def __init__(self, name: str, package: str) -> None:
        self.name, self.package = name, package

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise ImportError(f"the {self.name} serializer needs {self.package}: "
                          f"pip install 'aiocache-http[serializers]'")

    __call__ = dumps = loads = copy = set_decode_content = _fail

    def __repr__(self) -> str:
        return f"<{self.name} serializer: {self.package} is not installed>"


def _optional(module: str) -> Any:
    try:
        return import_module(module)
    except ImportError:
        return None


# -- stages ----------------------------------------------------------------------------
base_stage = CattrStage()  #: response <-> dict of Python values (bytes, datetimes)
json_preconf_stage = CattrStage(bytes_as="base64", times_as="iso")  #: ... of JSON values
yaml_preconf_stage = CattrStage(times_as="iso")  #: YAML keeps bytes (!!binary), not timezones
bson_preconf_stage = CattrStage(times_as="iso")  #: BSON keeps bytes, not timezones
utf8_encoder = Stage(dumps=str.encode, loads=lambda data: bytes(data).decode())  #: str <-> bytes


def signer_stage(secret_key: Any = None, salt: str = "requests-cache") -> Stage:
    """Signs on the way in, checks the signature on the way out (itsdangerous)."""
    from itsdangerous import Signer

    return Stage(Signer(secret_key=secret_key, salt=salt), dumps="sign", loads="unsign")


# -- serializers -----------------------------------------------------------------------
utf8_serializer = SerializerPipeline([utf8_encoder], "utf8", is_binary=True)
dict_serializer = SerializerPipeline([base_stage], "dict")
dynamodb_document_serializer = SerializerPipeline([base_stage], "dynamodb_document")
pickle_serializer = SerializerPipeline([base_stage, Stage(pickle)], "pickle", is_binary=True)
json_serializer = SerializerPipeline(
    [json_preconf_stage, Stage(dumps=partial(json.dumps, indent=2), loads=json.loads)], "json")


def safe_pickle_serializer(secret_key: Any = None, salt: str = "requests-cache",
                           **kwargs: Any) -> SerializerPipeline:
    """pickle, signed with ``secret_key``: an item whose signature fails is not unpickled."""
    return SerializerPipeline([base_stage, Stage(pickle), signer_stage(secret_key, salt)],
                              "safe_pickle", is_binary=True)


_yaml, _bson, _ujson, _orjson = (_optional(m) for m in ("yaml", "bson", "ujson", "orjson"))
yaml_serializer: Any = (
    SerializerPipeline([yaml_preconf_stage, Stage(_yaml, loads="safe_load", dumps="safe_dump")], "yaml")
    if _yaml else _Missing("yaml", "pyyaml"))
bson_serializer: Any = (
    SerializerPipeline([bson_preconf_stage, Stage(_bson, dumps="encode", loads="decode")], "bson",
                       is_binary=True)
    if _bson and hasattr(_bson, "encode") else _Missing("bson", "pymongo"))
bson_document_serializer: Any = (
    SerializerPipeline([bson_preconf_stage], "bson_document") if _bson else _Missing("bson", "pymongo"))
ujson_serializer: Any = (
    SerializerPipeline([json_preconf_stage, Stage(dumps=partial(_ujson.dumps, indent=2),
                                                  loads=_ujson.loads)], "ujson")
    if _ujson else _Missing("ujson", "ujson"))
orjson_serializer: Any = (
    SerializerPipeline([json_preconf_stage, Stage(dumps=partial(_orjson.dumps, option=_orjson.OPT_INDENT_2),
                                                  loads=_orjson.loads)], "orjson", is_binary=True)
    if _orjson else _Missing("orjson", "orjson"))

SERIALIZERS: dict[str, Any] = {
    "bson": bson_serializer,
    "json": json_serializer,
    "ujson": ujson_serializer,
    "orjson": orjson_serializer,
    "pickle": pickle_serializer,
    "yaml": yaml_serializer,
}

SerializerType = str | SerializerPipeline | Stage


def init_serializer(serializer: SerializerType | None, decode_content: bool) -> SerializerPipeline | None:
    """A pipeline from a name in :data:`SERIALIZERS`, a pipeline (copied) or a stage."""
    if not serializer:
        return None
    if isinstance(serializer, str):
        if serializer not in SERIALIZERS:
            raise ValueError(f"serializer={serializer!r}: choose one of {sorted(SERIALIZERS)}")
        serializer = SERIALIZERS[serializer]
    if isinstance(serializer, _Missing):
        serializer.copy()  # raises, naming the package
    pipeline = serializer.copy() if isinstance(serializer, SerializerPipeline) else (
        SerializerPipeline([serializer], name=str(serializer)))
    pipeline.set_decode_content(decode_content)
    return pipeline


class PipelineFormat:
    """A pipeline as the backend's format: records in, bytes out, whatever the pipeline's
    own output (text is UTF-8 encoded, a document goes through the storage encoding)."""

    def __init__(self, pipeline: SerializerPipeline) -> None:
        self.pipeline = pipeline
        self.name = pipeline.name or "pipeline"
        # A pickle pipeline keeps every item a pickle; the others (JSON, YAML...) store a
        # large body as an envelope item, in parts (see aiocache_http.serializers).
        self.whole_items = any(getattr(stage, "obj", None) is pickle for stage in pipeline.stages)

    def dumps(self, response: CachedResponse) -> bytes:
        data = self.pipeline.dumps(response)
        if isinstance(data, str):
            return data.encode()
        return data if isinstance(data, bytes) else encode_value(data)

    def loads(self, data: bytes) -> CachedResponse:
        try:
            result = self.pipeline.loads(decode_value(data))
        except Exception as e:  # whatever the format raises: not a response
            raise DeserializationError(f"{self.name}: {type(e).__name__}: {e}") from e
        if not isinstance(result, CachedResponse):
            raise DeserializationError(f"the {self.name} serializer gave a {type(result).__name__}, "
                                       "not a response")
        return result


def backend_format(serializer: Any, decode_content: bool = True) -> Any:
    """The backend ``serializer`` setting for requests-cache's value: a pipeline (or its
    name) becomes a :class:`PipelineFormat`; the backend's own names (``"pickle"`` is
    requests-cache's here) and None are kept."""
    if serializer is None or isinstance(serializer, PipelineFormat):
        return serializer
    if isinstance(serializer, str) and serializer not in SERIALIZERS:
        return serializer  # "envelope", "zlib": the backend's formats
    pipeline = init_serializer(serializer, decode_content)
    return None if pipeline is None else PipelineFormat(pipeline)


__all__ = [
    "SERIALIZERS",
    "CattrStage",
    "PipelineFormat",
    "SerializerPipeline",
    "SerializerType",
    "Stage",
    "backend_format",
    "bson_document_serializer",
    "bson_serializer",
    "dict_serializer",
    "dynamodb_document_serializer",
    "init_serializer",
    "json_serializer",
    "orjson_serializer",
    "pickle_serializer",
    "safe_pickle_serializer",
    "signer_stage",
    "ujson_serializer",
    "utf8_encoder",
    "utf8_serializer",
    "yaml_serializer",
]
