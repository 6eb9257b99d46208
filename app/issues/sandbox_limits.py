"""The bounds of one sandboxed render, and the checks that keep a template within them.

Jinja's sandbox guards attributes, not work. Here are the limits (range, sizes, integer
bits, loop turns and calls, output, wall time) and the checks made before an operation
that could exceed them runs: sizing a value through its containers, the widths a format
string asks for, what replace/join/indent and the padding str methods would make.
sandbox.py wires them into Jinja's environment, filters and calls.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping, MappingView
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.runtime import Undefined
from jinja2.utils import Namespace

# Bounds of one render. Bodies run at create time with sample data, and per recipient at
# send time, so a template must not be able to hang a request or a dispatcher thread, nor
# take gigabytes. Jinja's sandbox guards attributes, not work: these guard the work.
MAX_RANGE = 10_000  # items of range()
MAX_SIZE = 1_000_000  # characters of one string, items (deeply counted) of one list or dict
MAX_BITS = 10_000  # bits of an integer made by * or **
MAX_STEPS = 100_000  # loop turns and calls
MAX_OUTPUT = 5_000_000  # characters written; ten times the largest body the API accepts
MAX_SECONDS = 2.0  # wall time, checked at every step; legitimate renders take milliseconds
_WIDTHS = re.compile(r"\d+")
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_SCALARS = (int, float, Undefined, type(None))


class RenderLimitError(SecurityError):
    """A render that would loop, grow or run past the sandbox's bounds."""


def weight(value: Any) -> int:
    """Characters plus items, counted through nested containers, stopping past MAX_SIZE.

    What str() of the value would cost: a list of one big string repeated is big.
    """
    if isinstance(value, str):
        return len(value)
    if isinstance(value, _SCALARS):  # before the slower ABC checks
        return 1
    if isinstance(value, Namespace):
        value = object.__getattribute__(value, "_Namespace__attrs")
    if isinstance(value, Mapping):
        value = [*value.keys(), *value.values()]
    elif not isinstance(value, list | tuple | set | frozenset | MappingView):
        return 1
    total = len(value)
    for item in value:
        if total > MAX_SIZE:
            break
        total += weight(item)
    return total


def refuse_over(size: int, what: str, limit: int = MAX_SIZE) -> None:
    if size > limit:
        raise RenderLimitError(f"{what} would exceed {limit:,}")


def bounded(value: Any) -> Any:
    """`value`, unless it is a string or container past MAX_SIZE."""
    if isinstance(value, str):
        if len(value) > MAX_SIZE:
            refuse_over(len(value), "a value's size")
    elif not isinstance(value, _SCALARS):  # the common results, kept cheap
        refuse_over(weight(value), "a value's size")
    return value


def ints_within(args: Iterable[Any], limit: int = MAX_SIZE) -> int:
    largest = 0
    for arg in args:
        if isinstance(arg, int):
            refuse_over(abs(arg), "a width or count")
            largest = max(largest, abs(arg))
    return largest


def check_printf(fmt: str, args: Any) -> None:
    """`fmt % args`: the widths it asks for plus the arguments it may repeat (`%(a)s`)."""
    values = args if isinstance(args, tuple) else (args,)
    star = ints_within(values)
    biggest = max((weight(v) for v in values), default=0)
    total = len(fmt)
    for spec in _PRINTF.finditer(fmt):
        total += biggest
        for width in spec.groups():
            if width and len(width) > 7:
                refuse_over(MAX_SIZE + 1, "a format width")
            total += star if width == "*" else int(width or 0)
    refuse_over(total, "formatted text")


def _check_format(fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """str.format and format_map: each field may print the biggest argument, padded."""
    values = [*args, *kwargs.values()]
    star = ints_within(values)
    biggest = max((weight(v) for v in values), default=0)
    total = len(fmt)
    for _, field, spec, _ in string.Formatter().parse(fmt):
        if field is not None:
            widths = _WIDTHS.findall(spec or "")
            if any(len(w) > 7 for w in widths):
                refuse_over(MAX_SIZE + 1, "a format width")
            total += biggest + sum(map(int, widths)) + (star if "{" in (spec or "") else 0)
    refuse_over(total, "formatted text")


def _check_replace(s: Any, old: Any, new: Any, count: Any = None) -> None:
    if isinstance(s, str) and isinstance(old, str) and isinstance(new, str):
        n = s.count(old) if count is None or count < 0 else min(count, s.count(old))
        refuse_over(len(s) + n * max(len(new) - len(old), 0), "replace()'s result")


def _check_join(value: Any, d: Any = "", *_: Any, **__: Any) -> None:
    items = value if isinstance(value, list | tuple) else []
    refuse_over(weight(items) + len(items) * len(str(d)), "join()'s result")


def _check_indent(s: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    refuse_over(len(str(s)) + (str(s).count("\n") + 1) * pad, "indent()'s result")


def _check_wordwrap(s: Any, width: Any = 79, _long: Any = True, wrapstring: Any = None,
                    *_: Any, **__: Any) -> None:  # fmt: skip
    lines = len(str(s)) // max(int(width) if isinstance(width, int) else 1, 1) + 1
    refuse_over(len(str(s)) + lines * len(str(wrapstring or "\n")), "wordwrap()'s result")


def _check_tojson(value: Any, indent: Any = None) -> None:
    refuse_over(weight(value) * (1 + (indent if isinstance(indent, int) else 0)), "JSON")


def _check_padding(s: str, *args: Any) -> None:
    ints_within(args)


def _check_sum(iterable: Any, attribute: Any = None, start: Any = 0) -> None:
    if isinstance(start, list | tuple):  # adding sequences one by one is quadratic
        raise RenderLimitError("sum() of lists is not available")


# Filters that make more than they are given, checked before they run, with Jinja's
# parameter names so keyword arguments bind the same way.
FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "format": lambda value, *args, **kwargs: check_printf(str(value), kwargs or args),
    "replace": _check_replace,
    "join": _check_join,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "tojson": _check_tojson,
    "sum": _check_sum,
}
# Filters that consume their whole input: an iterator is listed first so it can be sized.
MATERIALISE = frozenset({"join", "sum"})
# str methods that make more than they are given; the padding ones by their int arguments.
STR_CHECKS: dict[str, Callable[..., None]] = {
    "replace": _check_replace,
    "join": lambda s, items: _check_join(items, s),
    "expandtabs": lambda s, tabsize=8: refuse_over(
        len(s) + s.count("\t") * ints_within([tabsize]), "expandtabs()'s result"
    ),
    **dict.fromkeys(("center", "ljust", "rjust", "zfill"), _check_padding),
}


def check_str_call(
    method: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[Any, ...]:
    """Size a str method call before it runs; the arguments to call it with."""
    receiver = getattr(method, "__self__", None)
    if isinstance(receiver, str):
        name = method.__name__
        if name in ("translate", "maketrans"):  # one character may become a whole string
            raise RenderLimitError("str.translate is not available")
        if name == "join" and args and isinstance(args[0], Iterator):
            args = (list(args[0]), *args[1:])
        check = STR_CHECKS.get(name)
        if check is not None:
            check(receiver, *args, **kwargs)
        return args
    wrapped = getattr(method, "__wrapped__", None)  # the sandbox's str.format wrapper
    fmt = getattr(wrapped, "__self__", None)
    if isinstance(fmt, str) and getattr(wrapped, "__name__", "") == "format":
        _check_format(fmt, args, kwargs)
    elif isinstance(fmt, str) and getattr(wrapped, "__name__", "") == "format_map":
        _check_format(fmt, (), args[0] if args else {})
    return args
