"""A cheaper ``__init__`` for the frozen dataclasses a request makes.

A frozen dataclass's generated ``__init__`` sets each field with
``object.__setattr__``, looked up anew for every field: a miss builds about ten such
values (its decisions, the response it stores...), and those lookups were a large share
of what it cost. :func:`fast_init` gives the class an ``__init__`` that takes the same
arguments and sets the same fields, with the setter bound once. The class stays a frozen
dataclass in every other respect (``replace()``, equality, hashing, FrozenInstanceError).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

_set = object.__setattr__


def fast_init(cls: type[T]) -> type[T]:
    """Replace the ``__init__`` of ``cls``, a frozen dataclass without ``__post_init__``,
    ``InitVar`` or ``init=False`` fields (refused), by an equivalent one (see above)."""
    params = dataclasses.fields(cls)  # type: ignore[arg-type]
    if hasattr(cls, "__post_init__") or any(not f.init or f.kw_only for f in params) or \
            getattr(cls, "__dataclass_fields__", None) is None or \
            any(f._field_type is not dataclasses._FIELD for f in params):  # type: ignore[attr-defined]
        raise TypeError(f"fast_init does not handle {cls.__name__}'s fields")
    namespace: dict[str, Any] = {"_set": _set, "_MISSING": dataclasses.MISSING}
    args, body = [], []
    for f in params:
        name = f.name
        if f.default is not dataclasses.MISSING:
            namespace[f"_d_{name}"] = f.default
            args.append(f"{name}=_d_{name}")
            body.append(f"    _set(self, {name!r}, {name})")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_f_{name}"] = f.default_factory
            args.append(f"{name}=_MISSING")
            body.append(f"    _set(self, {name!r}, _f_{name}() if {name} is _MISSING else {name})")
        else:
            args.append(name)
            body.append(f"    _set(self, {name!r}, {name})")
    source = f"def __init__(self, {', '.join(args)}):\n" + ("\n".join(body) or "    pass") + "\n"
    exec(source, namespace)  # (as dataclasses makes its own __init__)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


__all__ = ["fast_init"]
