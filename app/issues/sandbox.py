"""A Jinja sandbox that bounds work as well as access: range, operators, loops, output, time.

Jinja's own sandbox guards attributes, not work. Issue bodies run at create time with
sample data and per recipient at send time, so a template must not be able to hang a
request or a dispatcher, nor take gigabytes.
"""

from __future__ import annotations

import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MappingView
from typing import Any, cast

from jinja2 import ChainableUndefined, nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, LoopContext, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, generate_lorem_ipsum

# Bounds of one render. Bodies run at create time with sample data, and per recipient at
# send time, so a template must not be able to hang a request or a dispatcher thread, nor
# take gigabytes. Jinja's sandbox guards attributes, not work: these guard the work.
MAX_RANGE = 10_000  # items of range()
MAX_SIZE = 1_000_000  # characters of one string, items (deeply counted) of one list or dict
MAX_BITS = 10_000  # bits of an integer made by * or **
MAX_STEPS = 100_000  # loop turns and calls
MAX_OUTPUT = 5_000_000  # characters written; ten times the largest body the API accepts
MAX_SECONDS = 2.0  # wall time, checked at every step; legitimate renders take milliseconds
_BIG = 10_000  # a filter's input from which the clock is checked outside loops too
_WIDTHS = re.compile(r"\d+")
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


_SCALARS = (int, float, Undefined, type(None))


class TrustedCall:
    """Base of our own callables put into a render's context: called as they are."""

    __slots__ = ()

    def __call__(self, context: BoundedContext, value: Any) -> str:
        raise NotImplementedError


class RenderLimitError(SecurityError):
    """A render that would loop, grow or run past the sandbox's bounds."""


def _weight(value: Any) -> int:
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
        total += _weight(item)
    return total


def _refuse_over(size: int, what: str, limit: int = MAX_SIZE) -> None:
    if size > limit:
        raise RenderLimitError(f"{what} would exceed {limit:,}")


def bounded(value: Any) -> Any:
    """`value`, unless it is a string or container past MAX_SIZE."""
    if isinstance(value, str):
        if len(value) > MAX_SIZE:
            _refuse_over(len(value), "a value's size")
    elif not isinstance(value, _SCALARS):  # the common results, kept cheap
        _refuse_over(_weight(value), "a value's size")
    return value


def _ints_within(args: Iterable[Any], limit: int = MAX_SIZE) -> int:
    largest = 0
    for arg in args:
        if isinstance(arg, int):
            _refuse_over(abs(arg), "a width or count")
            largest = max(largest, abs(arg))
    return largest


def _check_printf(fmt: str, args: Any) -> None:
    """`fmt % args`: the widths it asks for plus the arguments it may repeat (`%(a)s`)."""
    values = args if isinstance(args, tuple) else (args,)
    star = _ints_within(values)
    biggest = max((_weight(v) for v in values), default=0)
    total = len(fmt)
    for spec in _PRINTF.finditer(fmt):
        total += biggest
        for width in spec.groups():
            if width and len(width) > 7:
                _refuse_over(MAX_SIZE + 1, "a format width")
            total += star if width == "*" else int(width or 0)
    _refuse_over(total, "formatted text")


def _check_format(fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """str.format and format_map: each field may print the biggest argument, padded."""
    values = [*args, *kwargs.values()]
    star = _ints_within(values)
    biggest = max((_weight(v) for v in values), default=0)
    total = len(fmt)
    for _, field, spec, _ in string.Formatter().parse(fmt):
        if field is not None:
            widths = _WIDTHS.findall(spec or "")
            if any(len(w) > 7 for w in widths):
                _refuse_over(MAX_SIZE + 1, "a format width")
            total += biggest + sum(map(int, widths)) + (star if "{" in (spec or "") else 0)
    _refuse_over(total, "formatted text")


def _check_replace(s: Any, old: Any, new: Any, count: Any = None) -> None:
    if isinstance(s, str) and isinstance(old, str) and isinstance(new, str):
        n = s.count(old) if count is None or count < 0 else min(count, s.count(old))
        _refuse_over(len(s) + n * max(len(new) - len(old), 0), "replace()'s result")


def _check_join(value: Any, d: Any = "", *_: Any, **__: Any) -> None:
    items = value if isinstance(value, list | tuple) else []
    _refuse_over(_weight(items) + len(items) * len(str(d)), "join()'s result")


def _check_indent(s: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    _refuse_over(len(str(s)) + (str(s).count("\n") + 1) * pad, "indent()'s result")


def _check_wordwrap(s: Any, width: Any = 79, _long: Any = True, wrapstring: Any = None,
                    *_: Any, **__: Any) -> None:  # fmt: skip
    lines = len(str(s)) // max(int(width) if isinstance(width, int) else 1, 1) + 1
    _refuse_over(len(str(s)) + lines * len(str(wrapstring or "\n")), "wordwrap()'s result")


def _check_tojson(value: Any, indent: Any = None) -> None:
    _refuse_over(_weight(value) * (1 + (indent if isinstance(indent, int) else 0)), "JSON")


def _check_padding(s: str, *args: Any) -> None:
    _ints_within(args)


def _check_sum(iterable: Any, attribute: Any = None, start: Any = 0) -> None:
    if isinstance(start, list | tuple):  # adding sequences one by one is quadratic
        raise RenderLimitError("sum() of lists is not available")


# Filters that make more than they are given, checked before they run, with Jinja's
# parameter names so keyword arguments bind the same way.
_FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "format": lambda value, *args, **kwargs: _check_printf(str(value), kwargs or args),
    "replace": _check_replace,
    "join": _check_join,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "tojson": _check_tojson,
    "sum": _check_sum,
}
# Filters that consume their whole input: an iterator is listed first so it can be sized.
_MATERIALISE = frozenset({"join", "sum"})
_FIRST_ARG: dict[str | None, Callable[[Context], Any]] = {
    "context": lambda c: c,
    "eval_context": lambda c: c.eval_ctx,
    "environment": lambda c: c.environment,
}
# str methods that make more than they are given; the padding ones by their int arguments.
_STR_CHECKS: dict[str, Callable[..., None]] = {
    "replace": _check_replace,
    "join": lambda s, items: _check_join(items, s),
    "expandtabs": lambda s, tabsize=8: _refuse_over(
        len(s) + s.count("\t") * _ints_within([tabsize]), "expandtabs()'s result"
    ),
    **dict.fromkeys(("center", "ljust", "rjust", "zfill"), _check_padding),
}


def _bounded_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` with its input, arguments and result sized, and the render's clock checked.

    Taking the context also keeps Jinja from running filters at compile time.
    """
    check = _FILTER_CHECKS.get(name)
    first = _FIRST_ARG.get(getattr(getattr(fn, "jinja_pass_arg", None), "name", None))

    @pass_context
    def bounded_filter(context: BoundedContext, value: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            size = len(value)
        else:  # str() of a big list is as big as the list
            if name in _MATERIALISE and isinstance(value, Iterator):
                value = list(value)
            size = _weight(value)
            _refuse_over(size, "a filtered value's size")
        if size > _BIG:  # outside loops (which check at every turn), only big work needs the clock
            context.check_time()
        if args or kwargs:
            _ints_within((*args, *kwargs.values()))
        if check is not None:
            check(value, *args, **kwargs)
        lead = () if first is None else (first(context),)
        return bounded(fn(*lead, value, *args, **kwargs))

    bounded_filter.__name__ = bounded_filter.__qualname__ = f"bounded_{name}"
    return bounded_filter


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    _refuse_over(len(numbers), "range()'s length", MAX_RANGE)
    return numbers


def _bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    _refuse_over(n * max, "lipsum()'s words", 100_000)
    return generate_lorem_ipsum(n, html, min, max)


class BoundedContext(Context):
    """A render's context, carrying that render's budget of steps, output and time.

    The budgets start as class attributes and the clock at the first check, so the many
    small per-recipient renders that never loop pay nothing to set them up.
    """

    steps_left = MAX_STEPS
    output_left = MAX_OUTPUT
    deadline = 0.0

    def step(self) -> None:
        """One loop turn or call."""
        self.steps_left -= 1
        if self.steps_left < 0:
            raise RenderLimitError(f"more than {MAX_STEPS:,} loop turns and calls")
        self.check_time()

    def check_time(self) -> None:
        """Refuse to go on past the render's deadline."""
        now = time.monotonic()
        if not self.deadline:
            self.deadline = now + MAX_SECONDS
        elif now > self.deadline:
            raise RenderLimitError(f"rendering took longer than {MAX_SECONDS:g} s")

    def emit(self, size: int) -> None:
        """`size` characters written."""
        self.output_left -= size
        if self.output_left < 0:
            raise RenderLimitError(f"the output would exceed {MAX_OUTPUT:,} characters")


@pass_context
def count_output(context: BoundedContext, value: Any) -> Any:
    """Jinja's finalize: every `{{ }}` value is charged to the render's output budget."""
    if isinstance(value, str):  # the common case, kept cheap: slots run per recipient
        context.output_left -= len(value)
    else:
        size = _weight(value)
        _refuse_over(size, "a printed value's size")  # _weight stops counting past MAX_SIZE
        context.output_left -= size
    if context.output_left < 0:
        raise RenderLimitError(f"the output would exceed {MAX_OUTPUT:,} characters")
    return value


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's compiler, with each loop's items, each `~` and all literal output counted."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        self._loop_iters = {*getattr(self, "_loop_iters", ()), id(node.iter)}
        super().visit_For(node, frame)

    def visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> Any:
        if id(node) not in getattr(self, "_loop_iters", ()):
            return super().visit(node, *args, **kwargs)
        self._loop_iters.discard(id(node))
        self.write("environment.counted(context, ")
        super().visit(node, *args, **kwargs)
        self.write(")")

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # Jinja's own, with the parts handed to environment.joined to be sized first.
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        else:
            join = "markup_join" if frame.eval_ctx.autoescape else "str_join"
        self.write(f"environment.joined({join}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_Output(self, node: nodes.Output, frame: Frame) -> None:
        size = sum(len(n.data) for n in node.nodes if isinstance(n, nodes.TemplateData))
        if size:
            self.writeline(f"context.emit({size})")
        super().visit_Output(node, frame)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with each render bounded in steps, sizes, output and time."""

    code_generator_class = _BoundedCodeGenerator
    context_class = BoundedContext
    # Intercepted operators are also never folded at compile time, so `'x' * 10**9` in a
    # body cannot run inside parse_checked either.
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=count_output, **options)
        self.globals.update(range=_bounded_range, lipsum=_bounded_lipsum)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    @staticmethod
    def joined(join: Callable[[Iterable[Any]], str], parts: tuple[Any, ...]) -> str:
        """`a ~ b`: refused when the parts are too big together (or escaping makes them so)."""
        _refuse_over(sum(_weight(part) for part in parts), "joined text")
        return bounded(join(parts))

    def counted(self, context: BoundedContext, items: Iterable[Any]) -> Iterator[Any]:
        """A loop's items, each a step of the render."""
        for item in items:
            context.step()
            yield item

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """`+`, `*`, `**` and `%`, refused before they compute anything too big."""
        if operator == "**" and isinstance(left, int) and isinstance(right, int):
            if right > 0 and abs(left) > 1:
                _refuse_over(left.bit_length() * right, "a power's bits", MAX_BITS)
        elif operator == "*" and isinstance(left, int) and isinstance(right, int):
            _refuse_over(left.bit_length() + right.bit_length(), "a product's bits", MAX_BITS)
        elif operator == "*" and (isinstance(left, int) or isinstance(right, int)):
            times, seq = (left, right) if isinstance(left, int) else (right, left)
            _refuse_over(_weight(seq) * max(times, 0), "a repeated value's size")
        elif operator == "+" and isinstance(left, str | list | tuple):
            _refuse_over(_weight(left) + _weight(right), "a joined value's size")
        elif operator == "%" and isinstance(left, str):
            _check_printf(left, right)
        return bounded(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        """Every call (functions, macros, methods) is a step, and sized."""
        context = cast(BoundedContext, __context)  # this environment's context_class
        if isinstance(__obj, TrustedCall):  # ours, e.g. the slow path's slot recorder
            return __obj(context, *args)
        context.step()
        if isinstance(__obj, LoopContext) and args:  # a recursive loop's next level
            args = (__self.counted(context, args[0]), *args[1:])
        else:
            args = _check_str_call(__obj, args, kwargs)
        return bounded(super().call(__context, __obj, *args, **kwargs))


def _check_str_call(
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
        check = _STR_CHECKS.get(name)
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


def make_env(*, autoescape: bool) -> BoundedSandbox:
    """A bounded sandbox where undefined names (and chains of them) render empty."""
    return BoundedSandbox(
        autoescape=autoescape, undefined=ChainableUndefined, keep_trailing_newline=True
    )
