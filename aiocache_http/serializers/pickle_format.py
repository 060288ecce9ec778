"""Opt-in pickle format (``serializer="pickle"``), for stored objects the envelope cannot
hold. Unpickling runs code: pair it with ``secret_key`` so only signed items are loaded."""

from __future__ import annotations

import pickle as _pickle

from ..models import CachedResponse
from .errors import DeserializationError


class PickleFormat:
    name = "pickle"
    whole_items = True  # every item a pickle, large ones too: it may hold what the envelope cannot

    def dumps(self, response: CachedResponse) -> bytes:
        return _pickle.dumps(response, protocol=_pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> CachedResponse:
        try:
            obj = _pickle.loads(data)
        except Exception as e:
            raise DeserializationError(f"not a pickled response: {e}") from e
        if not isinstance(obj, CachedResponse):
            raise DeserializationError(f"unpickled a {type(obj).__name__}, not a CachedResponse")
        return obj
