"""Sandboxed Jinja for issue bodies and layouts, split into static text and per-recipient slots.

A template is rendered once per issue with every subscriber-dependent `{{ expr }}` replaced
by a marker; the expensive work (Markdown, MJML, CSS inlining, QP) then runs once, and per
recipient only the slot expressions are evaluated. Templates whose control flow depends on
subscriber data cannot be split this way: they take the slow path, where the whole template
is rendered per recipient but its outputs are still recorded as markers, so both paths feed
the same downstream pipeline and produce the same bytes.
"""

from __future__ import annotations

import logging
import re
import string
import time
from _string import formatter_field_name_split
from collections.abc import Callable, Iterable, Iterator, Mapping, MappingView
from typing import Any, cast

from jinja2 import ChainableUndefined, TemplateSyntaxError, nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.environment import Template
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, LoopContext, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, generate_lorem_ipsum

log = logging.getLogger(__name__)

# Names whose value differs per recipient, and every name a body may read.
DYNAMIC_NAMES = frozenset({"subscriber", "unsubscribe_url", "preferences_url"})
CONTEXT_NAMES = DYNAMIC_NAMES | {"issue", "archive_url"}
_RECORDER = "_tidings_slot"

# Letters and digits only, so Markdown, nh3, MJML and css-inline pass markers through untouched.
SLOT_RE = re.compile(r"zqSLOT([A-Z])(\d{4})qz")


class BodyError(ValueError):
    """A body or template that does not compile or reaches for what the sandbox forbids."""


class HeaderError(ValueError):
    """A value bound for a header holds CR/LF or is otherwise invalid."""


def marker(tag: str, index: int) -> str:
    """The placeholder text of slot `index` of the template tagged `tag`."""
    return f"zqSLOT{tag}{index:04d}qz"


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
    def bounded_filter(context: _BoundedContext, value: Any, *args: Any, **kwargs: Any) -> Any:
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


class _BoundedContext(Context):
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
def _count_output(context: _BoundedContext, value: Any) -> Any:
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
    context_class = _BoundedContext
    # Intercepted operators are also never folded at compile time, so `'x' * 10**9` in a
    # body cannot run inside parse_checked either.
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_count_output, **options)
        self.globals.update(range=_bounded_range, lipsum=_bounded_lipsum)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    @staticmethod
    def joined(join: Callable[[Iterable[Any]], str], parts: tuple[Any, ...]) -> str:
        """`a ~ b`: refused when the parts are too big together (or escaping makes them so)."""
        _refuse_over(sum(_weight(part) for part in parts), "joined text")
        return bounded(join(parts))

    def counted(self, context: _BoundedContext, items: Iterable[Any]) -> Iterator[Any]:
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
        context = cast(_BoundedContext, __context)  # this environment's context_class
        if type(__obj) is _Recorder:  # our own, in the slow path's recording template
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


def parse_checked(env: BoundedSandbox, source: str) -> nodes.Template:
    """Parse `source`, refusing syntax errors, includes and any reach for `_` internals."""
    try:
        ast = env.parse(source)
        env.compile(ast)  # unknown filters and tests only show up here
        ast = env.parse(source)
    except TemplateSyntaxError as exc:
        raise BodyError(f"line {exc.lineno}: {exc.message}") from None
    for stmt in ast.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        raise BodyError(f"line {stmt.lineno}: extends, include and import are not available")
    for node in ast.find_all(nodes.Node):
        if _reaches_internals(node):
            raise BodyError(f"line {node.lineno}: names starting with '_' are not allowed")
    return ast


def _reaches_internals(node: nodes.Node) -> bool:
    if isinstance(node, nodes.Getattr | nodes.Name):
        return str(node.attr if isinstance(node, nodes.Getattr) else node.name).startswith("_")
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        return str(node.arg.value).startswith("_")
    if isinstance(node, nodes.Filter) and node.name == "attr":
        return any(isinstance(a, nodes.Const) and str(a.value).startswith("_") for a in node.args)
    if isinstance(node, nodes.Const) and isinstance(node.value, str) and "{" in node.value:
        # '{0.__class__}'.format(x): the attribute is in the string, not the AST. Checking every
        # string literal also covers one set to a variable and formatted later.
        return _format_reaches_internals(node.value)
    return False


def _format_reaches_internals(text: str, depth: int = 0) -> bool:
    try:
        fields = list(string.Formatter().parse(text))
        for _, name, spec, _ in fields:
            rest = formatter_field_name_split(name)[1] if name else ()
            if any(str(part).startswith("_") for _, part in rest):
                return True
            # A spec may hold fields of its own: '{0:{1.__class__}}'.
            if spec and "{" in spec and depth < 2 and _format_reaches_internals(spec, depth + 1):
                return True
    except ValueError:
        return False  # not a format string: str.format would refuse it as well
    return False


def _names(node: nodes.Node) -> set[str]:
    found = {n.name for n in node.find_all(nodes.Name)}
    if isinstance(node, nodes.Name):
        found.add(node.name)
    return found


def _output_children(ast: nodes.Template) -> list[tuple[nodes.Output, int]]:
    """Every expression printed by `{{ }}`, in a stable order (the same for two parses)."""
    return [
        (out, i)
        for out in ast.find_all(nodes.Output)
        for i, child in enumerate(out.nodes)
        if not isinstance(child, nodes.TemplateData)
    ]


class SlottedTemplate:
    """One Jinja source compiled into a static skeleton plus per-recipient slot expressions."""

    def __init__(
        self,
        source: str,
        *,
        tag: str,
        autoescape: bool,
        dynamic: frozenset[str],
        static: frozenset[str] = frozenset(),
    ):
        env = make_env(autoescape=autoescape)
        self.tag = tag
        analysis = parse_checked(env, source)
        children = _output_children(analysis)
        dyn = [bool(_names(out.nodes[i]) & dynamic) for out, i in children]
        slottable = [
            d and _names(out.nodes[i]) <= (CONTEXT_NAMES | dynamic | static)
            for d, (out, i) in zip(dyn, children, strict=True)
        ]
        inside = {
            id(n)
            for (out, i), s in zip(children, slottable, strict=True)
            if s
            for n in [out.nodes[i], *out.nodes[i].find_all(nodes.Name)]
        }
        stray = [
            n
            for n in analysis.find_all(nodes.Name)
            if (n.name in dynamic and id(n) not in inside)
            or (n.name in CONTEXT_NAMES | dynamic | static and n.ctx != "load")
        ]
        self.fast = not stray and all(s for d, s in zip(dyn, slottable, strict=True) if d)

        # Fast path: markers in place of the slottable expressions, and one template for them.
        skeleton, exprs = env.parse(source), []
        for (out, i), s in zip(_output_children(skeleton), slottable, strict=True):
            if s:
                exprs.append(out.nodes[i])
                out.nodes[i] = nodes.Const(marker(tag, len(exprs) - 1))
        self.skeleton = env.from_string(skeleton)
        slot_env = make_env(autoescape=False)
        slot_ast = nodes.Template([nodes.Output([e]) for e in exprs])
        slot_ast.set_environment(slot_env)
        self.slots = slot_env.from_string(slot_ast)
        self.slot_count = len(exprs)
        self._slot_env, self._exprs = slot_env, exprs
        self._single: dict[int, Template] = {}

        # Slow path: every expression touching subscriber data is recorded, not printed.
        recording = env.parse(source)
        for (out, i), d in zip(_output_children(recording), dyn, strict=True):
            if d:
                call = nodes.Call(nodes.Name(_RECORDER, "load"), [out.nodes[i]], [], None, None)
                out.nodes[i] = call
        recording.set_environment(env)
        self.recording = env.from_string(recording)

    def render_skeleton(self, context: Mapping[str, Any]) -> str:
        """The template with slot markers, for the fast path; rendered once per issue."""
        return self.skeleton.render(context)

    def eval_slots(self, context: Mapping[str, Any]) -> list[str]:
        """The slot values for one recipient; a failing slot renders empty instead of raising."""
        try:
            values = list(self.slots.generate(context))
            if len(values) == self.slot_count:
                return values
        except Exception:  # noqa: BLE001 - one subscriber's odd data must not stop a send
            log.warning("slot evaluation failed; rendering slots one by one", exc_info=True)
        return [self._one_slot(i, context) for i in range(self.slot_count)]

    def _one_slot(self, index: int, context: Mapping[str, Any]) -> str:
        if index not in self._single:
            single = nodes.Template([nodes.Output([self._exprs[index]])])
            single.set_environment(self._slot_env)
            self._single[index] = self._slot_env.from_string(single)
        try:
            return self._single[index].render(context)
        except Exception:  # noqa: BLE001 - documented: a failing slot renders empty
            return ""

    def render_recording(self, context: Mapping[str, Any]) -> tuple[str, list[str]]:
        """Full per-recipient render (slow path): text with markers, and the marker values."""
        record = _Recorder(self.tag)
        text = self.recording.render(context, **{_RECORDER: record})
        return text, record.values


class _Recorder:
    """Stands in for each subscriber-dependent `{{ }}` of a slow-path render: keeps its value
    and prints a marker in its place."""

    __slots__ = ("tag", "values")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.values: list[str] = []

    def __call__(self, context: _BoundedContext, value: Any) -> str:
        # What the marker stands for is output too: charged to the render like any `{{ }}`.
        text = str(_count_output(context, value))
        self.values.append(text)
        return marker(self.tag, len(self.values) - 1)


def trial_render(fn: Callable[[], object]) -> None:
    """Run a render with sample data, turning any failure into BodyError."""
    try:
        fn()
    except BodyError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure here is the author's to fix
        raise BodyError(f"the body fails to render: {exc}") from None


def is_template(source: str) -> bool:
    """Whether a one-line source (a subject) uses Jinja at all; plain text stays literal."""
    return "{{" in source or "{%" in source


class SubjectTemplate:
    """A subject line as a template: the body's slot machinery, filled into one string.

    Errors are HeaderErrors naming the subject, so the API's 422 points at that field. The
    caller cleans the result for the header; per recipient this never raises.
    """

    def __init__(self, source: str, static: Mapping[str, Any]):
        try:
            self.template = SlottedTemplate(
                source, tag="H", autoescape=False, dynamic=DYNAMIC_NAMES
            )
            self.fast = self.template.fast
            skeleton = self.template.render_skeleton(static) if self.fast else ""
        except BodyError as exc:
            raise HeaderError(f"subject: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - any failure here is the author's to fix
            raise HeaderError(f"subject fails to render: {exc}") from None
        self._chunks = SLOT_RE.split(skeleton)
        # A template that reads no subscriber data renders the same for everyone.
        self.constant = skeleton if self.fast and not self.template.slot_count else None

    def render(
        self,
        context: Mapping[str, Any],
        *,
        neutral: Mapping[str, Any] | None = None,
        force_slow: bool = False,
    ) -> str:
        """The subject for one recipient: failing slots render empty, as in bodies.

        A failing slow-path template falls back to the `neutral` context, then to "".
        """
        if self.fast and not force_slow:
            return _fill(self._chunks, self.template.eval_slots(context))
        for ctx in (context, neutral or context):
            try:
                return _fill(*self._recorded(ctx))
            except Exception:  # noqa: BLE001 - one subscriber's odd data must not stop a send
                log.warning("subject failed for one recipient", exc_info=True)
        return ""

    def check(self, context: Mapping[str, Any]) -> str:
        """Render strictly, every expression evaluated, for validation with a sample subscriber."""
        try:
            return _fill(*self._recorded(context))
        except Exception as exc:  # noqa: BLE001 - any failure here is the author's to fix
            raise HeaderError(f"subject fails to render: {exc}") from None

    def _recorded(self, context: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        text, values = self.template.render_recording(context)
        return SLOT_RE.split(text), values


def _fill(parts: list[str], values: list[str]) -> str:
    """Text split by SLOT_RE (static, tag, index, static, ...) with the slot values put back."""
    out = [parts[0]]
    for k in range(1, len(parts), 3):
        index = int(parts[k + 1])
        out += (values[index] if index < len(values) else "", parts[k + 2])
    return "".join(out)
