"""A griffe extension that fits the package's source to what mkdocstrings renders.

Two things, both when griffe loads the package (the source itself stays as it is, for
its readers and for ``help()``):

- The docstrings cross-reference with Sphinx roles (``:class:`~isales_async.BatchReport```)
  and introduce examples with ``::``. mkdocstrings renders Markdown, where both would show
  as typed, so a role becomes inline code of its target (the last part only with ``~``,
  as Sphinx shows it), and a paragraph ending in ``::`` ends in ``:`` (the indented block
  after it already is a Markdown code block).
- The models and options are attrs classes, whose ``__init__`` attrs writes at run time,
  so griffe, reading the source, sees none: their signature would be empty and their
  ``Args:`` sections would name parameters it does not know. Like griffe's own support
  for dataclasses, the ``__init__`` is rebuilt from the annotated fields, in order, with
  their defaults (``attrs.field(default=...)``, ``factory=``), keyword-only where attrs
  makes them so, and without ``init=False`` fields; a field shows its default rather
  than the ``attrs.field(...)`` call.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

__all__ = ["IsalesSource", "markdown_of"]

_ROLE = re.compile(r":(?:class|meth|func|attr|data|mod|exc|obj|const):`(~?)([^`]+)`")
_LITERAL_INTRO = re.compile(r"(?<=\S)::$", re.M)
_LONE_LITERAL_MARK = re.compile(r"^[ \t]*::[ \t]*\n", re.M)
_ATTRS_DECORATORS = {
    f"{module}.{name}" for module in ("attrs", "attr") for name in ("define", "frozen", "mutable", "s")
}
_ATTRS_FIELDS = {f"{module}.{name}" for module in ("attrs", "attr") for name in ("field", "ib")}


def _role_as_code(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2).lstrip(".")
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def markdown_of(docstring: str) -> str:
    """``docstring`` with its Sphinx roles as inline code and its ``::`` introductions as ``:``."""
    text = _ROLE.sub(_role_as_code, docstring)
    text = _LONE_LITERAL_MARK.sub("", text)
    return _LITERAL_INTRO.sub(":", text)


def _call_arguments(expr: object) -> dict[str, Any]:
    if not isinstance(expr, griffe.ExprCall):
        return {}
    return {arg.name: arg.value for arg in expr.arguments if isinstance(arg, griffe.ExprKeyword)}


def _attrs_decorator(cls: griffe.Class) -> dict[str, Any] | None:
    """The arguments of the class's attrs decorator, or ``None`` when it has none."""
    for decorator in cls.decorators:
        value = decorator.value
        function = value.function if isinstance(value, griffe.ExprCall) else value
        if isinstance(function, griffe.Expr) and function.canonical_path in _ATTRS_DECORATORS:
            return _call_arguments(value)
    return None


def _attrs_parameters(cls: griffe.Class, kw_only: bool) -> list[griffe.Parameter]:
    parameters = []
    for member in cls.members.values():
        if member.is_alias or not member.is_attribute or member.annotation is None or "property" in member.labels:
            continue
        if "class-attribute" in member.labels and "instance-attribute" not in member.labels and member.value is None:
            continue
        field = _call_arguments(member.value) if _is_attrs_field(member.value) else None
        if field is not None and str(field.get("init")) == "False":
            continue
        default: Any = member.value
        if field is not None:
            factory = field.get("factory")
            default = griffe.ExprCall(function=factory, arguments=[]) if factory is not None else field.get("default")
            member.value = default  # shown as the field's default, not the attrs.field(...) call
        keyword_only = kw_only or (field is not None and str(field.get("kw_only")) == "True")
        kind = griffe.ParameterKind.keyword_only if keyword_only else griffe.ParameterKind.positional_or_keyword
        parameters.append(
            griffe.Parameter(
                member.name.lstrip("_"),
                annotation=member.annotation,
                kind=kind,
                default=default,
                docstring=member.docstring,
            )
        )
    return parameters


def _is_attrs_field(value: object) -> bool:
    return isinstance(value, griffe.ExprCall) and value.function.canonical_path in _ATTRS_FIELDS


def _set_attrs_init(cls: griffe.Class) -> None:
    options = _attrs_decorator(cls)
    if options is None or "__init__" in cls.members or str(options.get("init")) == "False":
        return
    parameters = _attrs_parameters(cls, kw_only=str(options.get("kw_only")) == "True")
    required = [p for p in parameters if p.default is None and p.kind is griffe.ParameterKind.positional_or_keyword]
    optional = [p for p in parameters if p not in required]
    init = griffe.Function(
        "__init__",
        lineno=0,
        endlineno=0,
        parent=cls,
        parameters=griffe.Parameters(
            griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword), *required, *optional
        ),
        returns="None",
    )
    cls.set_member("__init__", init)


class IsalesSource(griffe.Extension):
    """Rewrites every loaded docstring with :func:`markdown_of` and gives attrs classes their ``__init__``."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_of(obj.docstring.value)
        if isinstance(obj, griffe.Class):
            _set_attrs_init(obj)
