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
from _string import formatter_field_name_split
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from jinja2 import TemplateSyntaxError, nodes
from jinja2.environment import Template

from app.issues.sandbox import (
    BoundedContext,
    BoundedSandbox,
    TrustedCall,
    count_output,
    make_env,
)

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
        self.exprs: list[nodes.Expr] = exprs
        self.slot_count = len(exprs)
        self.batch = SlotBatch([self])

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
        return self.batch.eval(context)[self.tag]

    def render_recording(self, context: Mapping[str, Any]) -> tuple[str, list[str]]:
        """Full per-recipient render (slow path): text with markers, and the marker values."""
        record = _Recorder(self.tag)
        text = self.recording.render(context, **{_RECORDER: record})
        return text, record.values


class SlotBatch:
    """The slot expressions of several fast templates, evaluated as one Jinja render.

    Each render starts a context (~5 us before the first expression) and an issue has
    three slotted templates (the layout's HTML and text, the body): here they are one. An
    expression written several times (the reader's name in each section) is evaluated
    once, as expressions over the recipient are pure; those with a call or the random
    filter stay apart. A failing render is redone one expression at a time, the failing
    ones empty, as a template's own slots always were.
    """

    def __init__(self, templates: Sequence[SlottedTemplate]):
        self.env = make_env(autoescape=False)
        self.exprs: list[nodes.Expr] = []
        self.places: list[tuple[str, list[int]]] = []  # per template: its tag, where each slot is
        seen: dict[object, int] = {}
        for template in templates:
            places = []
            for expr in template.exprs:
                key = repr(expr) if _pure(expr) else object()
                if key not in seen:
                    seen[key] = len(self.exprs)
                    self.exprs.append(expr)
                places.append(seen[key])
            self.places.append((template.tag, places))
        self.template = self._compile(self.exprs)
        self._single: dict[int, Template] = {}

    def _compile(self, exprs: list[nodes.Expr]) -> Template:
        ast = nodes.Template([nodes.Output([e]) for e in exprs])
        ast.set_environment(self.env)
        return self.env.from_string(ast)

    def eval(self, context: Mapping[str, Any]) -> dict[str, list[str]]:
        """Each template's slot values (by tag) for one recipient; never raises."""
        template = self.template
        try:
            # generate() without its two copies of the context: it is only read here.
            # Jinja reads a shared context only through [] and `in`: any Mapping will do.
            shared = template.new_context(cast("dict[str, Any]", context), shared=True)
            values = list(template.root_render_func(shared))
        except Exception:  # noqa: BLE001 - one subscriber's odd data must not stop a send
            log.warning("slot evaluation failed; rendering slots one by one", exc_info=True)
            values = []
        if len(values) != len(self.exprs):
            values = [self._one(i, context) for i in range(len(self.exprs))]
        return {tag: [values[p] for p in places] for tag, places in self.places}

    def _one(self, index: int, context: Mapping[str, Any]) -> str:
        if index not in self._single:
            self._single[index] = self._compile([self.exprs[index]])
        try:
            return self._single[index].render(context)
        except Exception:  # noqa: BLE001 - documented: a failing slot renders empty
            return ""


def _pure(expr: nodes.Expr) -> bool:
    found = [expr, *expr.find_all((nodes.Call, nodes.Filter))]
    return not any(
        isinstance(n, nodes.Call) or (isinstance(n, nodes.Filter) and n.name == "random")
        for n in found
    )


class _Recorder(TrustedCall):
    """Stands in for each subscriber-dependent `{{ }}` of a slow-path render: keeps its value
    and prints a marker in its place."""

    __slots__ = ("tag", "values")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.values: list[str] = []

    def __call__(self, context: BoundedContext, value: Any) -> str:
        # What the marker stands for is output too: charged to the render like any `{{ }}`.
        text = str(count_output(context, value))
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
