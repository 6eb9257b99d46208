"""A Jinja sandbox that bounds work as well as access: range, operators, loops, output, time.

Jinja's own sandbox guards attributes, not work. Issue bodies run at create time with
sample data and per recipient at send time, so a template must not be able to hang a
request or a dispatcher, nor take gigabytes. This module owns the environment: its
compiler (loops, `~` and literal output counted), its per-render context with the budgets,
and its bounded filters, operators and calls; the limits and size checks are in
sandbox_limits.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

from jinja2 import ChainableUndefined, nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum

from app.issues.sandbox_limits import (
    FILTER_CHECKS,
    MATERIALISE,
    MAX_BITS,
    MAX_OUTPUT,
    MAX_RANGE,
    MAX_SECONDS,
    MAX_STEPS,
    RenderLimitError,
    bounded,
    check_printf,
    check_str_call,
    ints_within,
    refuse_over,
    weight,
)

_BIG = 10_000  # a filter's input from which the clock is checked outside loops too


class TrustedCall:
    """Base of our own callables put into a render's context: called as they are."""

    __slots__ = ()

    def __call__(self, context: BoundedContext, value: Any) -> str:
        raise NotImplementedError


_FIRST_ARG: dict[str | None, Callable[[Context], Any]] = {
    "context": lambda c: c,
    "eval_context": lambda c: c.eval_ctx,
    "environment": lambda c: c.environment,
}


def _bounded_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` with its input, arguments and result sized, and the render's clock checked.

    Taking the context also keeps Jinja from running filters at compile time.
    """
    check = FILTER_CHECKS.get(name)
    first = _FIRST_ARG.get(getattr(getattr(fn, "jinja_pass_arg", None), "name", None))

    @pass_context
    def bounded_filter(context: BoundedContext, value: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            size = len(value)
        else:  # str() of a big list is as big as the list
            if name in MATERIALISE and isinstance(value, Iterator):
                value = list(value)
            size = weight(value)
            refuse_over(size, "a filtered value's size")
        if size > _BIG:  # outside loops (which check at every turn), only big work needs the clock
            context.check_time()
        if args or kwargs:
            ints_within((*args, *kwargs.values()))
        if check is not None:
            check(value, *args, **kwargs)
        lead = () if first is None else (first(context),)
        return bounded(fn(*lead, value, *args, **kwargs))

    bounded_filter.__name__ = bounded_filter.__qualname__ = f"bounded_{name}"
    return bounded_filter


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    refuse_over(len(numbers), "range()'s length", MAX_RANGE)
    return numbers


def _bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    refuse_over(n * max, "lipsum()'s words", 100_000)
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
        size = weight(value)
        refuse_over(size, "a printed value's size")  # _weight stops counting past MAX_SIZE
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
        refuse_over(sum(weight(part) for part in parts), "joined text")
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
                refuse_over(left.bit_length() * right, "a power's bits", MAX_BITS)
        elif operator == "*" and isinstance(left, int) and isinstance(right, int):
            refuse_over(left.bit_length() + right.bit_length(), "a product's bits", MAX_BITS)
        elif operator == "*" and (isinstance(left, int) or isinstance(right, int)):
            times, seq = (left, right) if isinstance(left, int) else (right, left)
            refuse_over(weight(seq) * max(times, 0), "a repeated value's size")
        elif operator == "+" and isinstance(left, str | list | tuple):
            refuse_over(weight(left) + weight(right), "a joined value's size")
        elif operator == "%" and isinstance(left, str):
            check_printf(left, right)
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
            args = check_str_call(__obj, args, kwargs)
        return bounded(super().call(__context, __obj, *args, **kwargs))


def make_env(*, autoescape: bool) -> BoundedSandbox:
    """A bounded sandbox where undefined names (and chains of them) render empty."""
    return BoundedSandbox(
        autoescape=autoescape, undefined=ChainableUndefined, keep_trailing_newline=True
    )
