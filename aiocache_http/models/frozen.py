"""A cheaper ``__init__`` for the frozen dataclasses a request makes.

A frozen dataclass's generated ``__init__`` sets each field with
``object.__setattr__``, looked up anew for every field: a miss builds several such
values (its decisions, the response it stores...), and those calls were a large share
of what it cost (each one a call through a wrapper, with an argument tuple made and
dropped). :func:`fast_init` gives the class an ``__init__`` that takes the same
arguments and sets the same fields in plain assignments: for that while, the new object
is of a twin class with the same slots and no frozen ``__setattr__`` (Python allows
switching ``__class__`` between classes of one layout), then of the class again. An
instance of a subclass (another layout, perhaps) gets its fields set the way dataclasses
does. The class stays a frozen dataclass in every other respect (``replace()``,
equality, hashing, FrozenInstanceError).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

_set = object.__setattr__
_del = object.__delattr__  # (both: they share one type slot, which is C only if both are)


def fast_init(cls: type[T]) -> type[T]:
    """Replace the ``__init__`` of ``cls``, a frozen dataclass without ``__post_init__``,
    ``InitVar`` or ``init=False`` fields (refused), by an equivalent one (see above)."""
    params = dataclasses.fields(cls)  # type: ignore[arg-type]
    if hasattr(cls, "__post_init__") or any(not f.init or f.kw_only for f in params) or \
            getattr(cls, "__dataclass_fields__", None) is None or \
            any(f._field_type is not dataclasses._FIELD for f in params):  # type: ignore[attr-defined]
        raise TypeError(f"fast_init does not handle {cls.__name__}'s fields")
    if "__slots__" not in cls.__dict__:
        raise TypeError(f"fast_init takes a slotted dataclass, not {cls.__name__}")
    # The twin: the same slots (the same layout), assignments as for any object.
    twin = type(f"_{cls.__name__}Fields", cls.__bases__,
                {"__slots__": cls.__dict__["__slots__"], "__setattr__": _set, "__delattr__": _del,
                 "__module__": cls.__module__})
    namespace: dict[str, Any] = {"_set": _set, "_MISSING": dataclasses.MISSING, "_cls": cls,
                                 "_twin": twin}
    args, fast, slow = [], [], []
    for f in params:
        name = f.name
        value = name
        if f.default is not dataclasses.MISSING:
            namespace[f"_d_{name}"] = f.default
            args.append(f"{name}=_d_{name}")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_f_{name}"] = f.default_factory
            args.append(f"{name}=_MISSING")
            value = f"_f_{name}() if {name} is _MISSING else {name}"
        else:
            args.append(name)
        fast.append(f"        self.{name} = {value}")
        slow.append(f"        _set(self, {name!r}, {value})")
    source = (f"def __init__(self, {', '.join(args)}):\n"
              "    if self.__class__ is _cls:\n"
              "        _set(self, '__class__', _twin)\n"
              + "".join(line + "\n" for line in fast)
              + "        self.__class__ = _cls\n"
              "    else:  # a subclass's instance\n"
              + ("\n".join(slow) or "        pass") + "\n")
    exec(source, namespace)  # (as dataclasses makes its own __init__)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


__all__ = ["fast_init"]
