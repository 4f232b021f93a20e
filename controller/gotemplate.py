"""Go text/template, the subset Docker users write in `--format` and `inspect -f` (pure).

Hand-written: no maintained Python implementation of Go templates exists (the one on PyPI
wraps Go through cgo, version 0.0.2). Covered: text and `{{ }}` actions with `{{-`/`-}}`
trimming; `.Field.Chains`, `.`, `$`, variables (`$x :=`, `$k, $v := range`); pipelines with
`|` and parenthesised sub-expressions; `if`/`else if`/`else`, `range` (with `else`), `with`;
Go's builtins (and, or, not, eq, ne, lt, le, gt, ge, len, index, slice, print, printf,
println) and Docker's (json, join, split, lower, upper, title, truncate, pad). Values print as
Go's fmt prints them (`[a b]`, `map[k:v]`, `<nil>`, a missing map key `<no value>`).

`table` renders Docker's `table ...` formats: a header row (the fields' column names) and the
rows aligned as Docker's tabwriter aligns them (min width 10, padding 3).
"""

from __future__ import annotations

import json as jsonlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.errors import UserError


class TemplateError(UserError):
    pass


class _NoValue:
    """A missing map key: prints `<no value>`, is false."""

    def __bool__(self) -> bool:
        return False


NO_VALUE = _NoValue()

# --------------------------------------------------------------------------- lexing

TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|`[^`]*`)
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<declare>:=)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<variable>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[()|,=])
""", re.VERBOSE)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


def _tokens(source: str) -> list[Token]:
    out: list[Token] = []
    pos = 0
    while pos < len(source):
        m = TOKEN.match(source, pos)
        if m is None:
            raise TemplateError(
                f'template parsing error: template: :1: unexpected "{source[pos]}" in operand')
        pos = m.end()
        kind = m.lastgroup or ""
        if kind == "space":
            continue
        text = m.group(kind)
        if kind == "field" and out and out[-1].text == ")" and text != ".":
            kind = "chain"  # (expr).Field
        out.append(Token(kind, text))
    return out


def _pieces(template: str) -> list[tuple[str, str]]:
    """("text", s) and ("action", inside) in order, trim markers applied."""
    out: list[tuple[str, str]] = []
    pos = 0
    while True:
        start = template.find("{{", pos)
        if start < 0:
            out.append(("text", template[pos:]))
            return out
        end = _action_end(template, start + 2)
        inside = template[start + 2:end]
        text = template[pos:start]
        if inside.startswith("- ") or inside == "-" or inside.startswith("-\n") or inside.startswith("-\t"):
            text = text.rstrip()
            inside = inside[1:]
        trim_after = inside.endswith(" -") or inside.endswith("\n-") or inside.endswith("\t-")
        if trim_after:
            inside = inside[:-1]
        out.append(("text", text))
        out.append(("action", inside.strip()))
        pos = end + 2
        if trim_after:
            while pos < len(template) and template[pos].isspace():
                pos += 1


def _action_end(template: str, pos: int) -> int:
    quote = ""
    while pos < len(template):
        ch = template[pos]
        if quote:
            if ch == "\\" and quote == '"':
                pos += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"`":
            quote = ch
        elif template.startswith("}}", pos):
            return pos
        pos += 1
    raise TemplateError("template parsing error: template: :1: unclosed action")


# --------------------------------------------------------------------------- parsing

Node = Any  # str | Pipeline | Block


@dataclass
class Command:
    operands: list[Any]  # Token | Pipeline (parenthesised), each maybe with a .chain


@dataclass
class Pipeline:
    variables: list[str]
    commands: list[Command]
    chain: str = ""  # (pipeline).Field


@dataclass
class Block:
    keyword: str  # if | range | with
    pipeline: Pipeline
    body: list[Node] = field(default_factory=list)
    otherwise: list[Node] = field(default_factory=list)


def _parse_pipeline(tokens: list[Token], pos: int = 0, closing: str = "") -> tuple[Pipeline, int]:
    variables: list[str] = []
    # `$x :=` or `$k, $v :=`
    look = pos
    names = []
    while look < len(tokens) and tokens[look].kind == "variable":
        names.append(tokens[look].text)
        look += 1
        if look < len(tokens) and tokens[look].text == ",":
            look += 1
            continue
        break
    if names and look < len(tokens) and tokens[look].text in (":=", "="):
        variables, pos = names, look + 1
    commands: list[Command] = []
    operands: list[Any] = []
    while pos < len(tokens):
        t = tokens[pos]
        if t.text == ")" and closing:
            break
        if t.text == "|":
            if not operands:
                raise TemplateError("template parsing error: template: :1: missing value for command")
            commands.append(Command(operands))
            operands = []
            pos += 1
        elif t.text == "(":
            inner, pos = _parse_pipeline(tokens, pos + 1, ")")
            if pos >= len(tokens) or tokens[pos].text != ")":
                raise TemplateError("template parsing error: template: :1: unclosed left paren")
            pos += 1
            if pos < len(tokens) and tokens[pos].kind == "chain":
                inner.chain = tokens[pos].text
                pos += 1
            operands.append(inner)
        elif t.kind in ("string", "number", "field", "variable", "ident"):
            operands.append(t)
            pos += 1
        else:
            raise TemplateError(f'template parsing error: template: :1: unexpected "{t.text}" in operand')
    if not operands:
        raise TemplateError("template parsing error: template: :1: missing value for command")
    commands.append(Command(operands))
    return Pipeline(variables, commands), pos


def parse(template: str) -> list[Node]:
    root: list[Node] = []
    # Open blocks: (block, the list it sits in, closed by its parent's {{end}}: an else-if).
    stack: list[tuple[Block, list[Node], bool]] = []
    current = root
    for kind, text in _pieces(template):
        if kind == "text":
            if text:
                current.append(text)
            continue
        if text.startswith("/*") and text.endswith("*/"):
            continue  # a comment
        word, _, rest = text.partition(" ")
        if word in ("if", "range", "with"):
            block = Block(word, _pipeline_of(rest, word))
            current.append(block)
            stack.append((block, current, False))
            current = block.body
        elif word == "else":
            if not stack or current is stack[-1][0].otherwise:
                raise TemplateError("template parsing error: template: :1: unexpected {{else}}")
            block = stack[-1][0]
            current = block.otherwise
            inner_word, _, inner = rest.partition(" ")
            if inner_word in ("if", "with"):  # {{else if X}}: a block in the else branch
                nested = Block(inner_word, _pipeline_of(inner, inner_word))
                current.append(nested)
                stack.append((nested, current, True))
                current = nested.body
            elif rest:
                raise TemplateError(f'template parsing error: template: :1: unexpected "{rest}" in else')
        elif word == "end":
            if not stack:
                raise TemplateError("template parsing error: template: :1: unexpected {{end}}")
            _, current, chained = stack.pop()
            while chained:  # an else-if ends with the block it continues
                _, current, chained = stack.pop()
        else:
            if not text:
                raise TemplateError("template parsing error: template: :1: missing value for command")
            current.append(_pipeline_of(text, ""))
    if stack:
        raise TemplateError(
            f"template parsing error: template: :1: unexpected EOF (unclosed {stack[-1][0].keyword})")
    return root


def _pipeline_of(source: str, keyword: str) -> Pipeline:
    if not source.strip():
        raise TemplateError(
            f"template parsing error: template: :1: missing value for {keyword or 'command'}")
    tokens = _tokens(source)
    pipeline, pos = _parse_pipeline(tokens)
    if pos != len(tokens):
        raise TemplateError(
            f'template parsing error: template: :1: unexpected "{tokens[pos].text}" in operand')
    return pipeline


# --------------------------------------------------------------------------- values


def shown(value: Any) -> str:
    """A value as Go's fmt %v prints it."""
    if value is NO_VALUE:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if value != int(value) or abs(value) >= 1e21 else str(int(value))
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{shown(k)}:{shown(value[k])}" for k in sorted(value, key=str)) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(shown(v) for v in value) + "]"
    return str(value)


def truthy(value: Any) -> bool:
    if value is None or value is NO_VALUE:
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return bool(value)
    return True


def _field(value: Any, name: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(name, NO_VALUE)
    if value is None or value is NO_VALUE:
        return NO_VALUE
    raise TemplateError(f"template: :1: can't evaluate field {name} in type {type(value).__name__}")


def _chain(value: Any, chain: str) -> Any:
    for name in chain.split(".")[1:]:
        value = _field(value, name)
    return value


def _compare(op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def compare(a: Any, b: Any) -> bool:
        try:
            return op(a, b)
        except TypeError:
            raise TemplateError(
                f"template: :1: incompatible types for comparison: {shown(a)}, {shown(b)}") from None
    return compare


def _printf(fmt: str, *args: Any) -> str:
    """Go's Sprintf for the verbs templates use (%s %v %d %q %x %f %t), widths and `-`."""
    values = iter(args)

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "%%":
            return "%"
        spec, verb = _py(m.group(1)), m.group(2)
        try:
            v = next(values)
        except StopIteration:
            return f"%!{verb}(MISSING)"
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        if verb in ("v", "s") or (verb == "t" and isinstance(v, bool)):
            # Go pads strings on the left unless `-`; Python's default for strings is the other way.
            return format(shown(v), spec if not spec or spec.startswith("<") else ">" + spec)
        if verb == "q":
            return jsonlib.dumps(v if isinstance(v, str) else shown(v), ensure_ascii=False)
        if verb in ("d", "x", "X", "o", "b") and isinstance(v, int) and not isinstance(v, bool):
            return format(v, spec + ("" if verb == "d" else verb))
        if verb in ("f", "e", "g") and number:
            return format(float(v), spec + verb)
        return f"%!{verb}({type(v).__name__}={shown(v)})"

    out = re.sub(r"%%|%([-+ 0#]*\d*(?:\.\d+)?)([a-zA-Z])", one, fmt)
    extra = list(values)
    if extra:
        out += "%!(EXTRA " + ", ".join(f"{type(v).__name__}={shown(v)}" for v in extra) + ")"
    return out


def _py(spec: str) -> str:
    """Go's flags to Python's: `-5` (left) is `<5`, `05` stays."""
    return "<" + spec[1:] if spec.startswith("-") else spec


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key, NO_VALUE)
        elif isinstance(value, (list, tuple, str)) and isinstance(key, int):
            if not 0 <= key < len(value):
                raise TemplateError(f"template: :1: error calling index: index out of range: {key}")
            value = value[key]
        else:
            raise TemplateError(f"template: :1: error calling index: cannot index {type(value).__name__}")
    return value


def _len(value: Any) -> int:
    if isinstance(value, (str, list, tuple, Mapping)):
        return len(value)
    raise TemplateError(f"template: :1: error calling len: len of type {type(value).__name__}")


def _slice(value: Any, *bounds: int) -> Any:
    if not isinstance(value, (str, list, tuple)):
        raise TemplateError(f"template: :1: error calling slice: can't slice {type(value).__name__}")
    return value[slice(*bounds)] if bounds else value


def _print(args: Sequence[Any]) -> str:
    """Go's Sprint: a space between two operands when neither is a string."""
    out = []
    for i, v in enumerate(args):
        if i and not isinstance(v, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(shown(v))
    return "".join(out)


def _json(value: Any) -> str:
    return jsonlib.dumps(None if value is NO_VALUE else value, separators=(",", ":"), ensure_ascii=False,
                         default=str)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TemplateError(
            f"template: :1: wrong type for value; expected string; got {type(value).__name__}")
    return value


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "and": lambda *a: next((v for v in a if not truthy(v)), a[-1]),
    "or": lambda *a: next((v for v in a if truthy(v)), a[-1]),
    "not": lambda v: not truthy(v),
    "eq": lambda a, *bs: any(a == b for b in bs),
    "ne": _compare(lambda a, b: a != b),
    "lt": _compare(lambda a, b: a < b),
    "le": _compare(lambda a, b: a <= b),
    "gt": _compare(lambda a, b: a > b),
    "ge": _compare(lambda a, b: a >= b),
    "len": _len,
    "index": _index,
    "slice": _slice,
    "print": lambda *a: _print(a),
    "printf": lambda fmt, *a: _printf(_text(fmt), *a),
    "println": lambda *a: " ".join(shown(v) for v in a) + "\n",
    # Docker's
    "json": _json,
    "join": lambda items, sep: _text(sep).join(shown(v) for v in (items or [])),
    "split": lambda s, sep: _text(s).split(_text(sep)),
    "lower": lambda s: _text(s).lower(),
    "upper": lambda s: _text(s).upper(),
    "title": lambda s: _text(s).title(),
    "truncate": lambda s, n: _text(s)[: int(n)],
    "pad": lambda s, left, right: " " * int(left) + _text(s) + " " * int(right),
}


# --------------------------------------------------------------------------- evaluation


class _Scope:
    def __init__(self, root: Any) -> None:
        self.frames: list[dict[str, Any]] = [{"$": root}]

    def get(self, name: str) -> Any:
        for frame in reversed(self.frames):
            if name in frame:
                return frame[name]
        raise TemplateError(f'template parsing error: template: :1: undefined variable "{name}"')

    def set(self, name: str, value: Any) -> None:
        self.frames[-1][name] = value


def _operand(op: Any, dot: Any, scope: _Scope) -> Any:
    if isinstance(op, Pipeline):
        value = _pipeline(op, dot, scope)
        return _chain(value, op.chain) if op.chain else value
    t: Token = op
    if t.kind == "string":
        return t.text[1:-1] if t.text.startswith("`") else jsonlib.loads(t.text)
    if t.kind == "number":
        return float(t.text) if any(c in t.text for c in ".eE") else int(t.text)
    if t.kind == "field":
        return dot if t.text == "." else _chain(dot, t.text)
    if t.kind == "variable":
        name, _, rest = t.text.partition(".")
        value = scope.get(name)
        return _chain(value, "." + rest) if rest else value
    if t.text in ("true", "false"):
        return t.text == "true"
    if t.text == "nil":
        return None
    if t.text in FUNCTIONS:
        return _call(t.text, [])
    raise TemplateError(f'template parsing error: template: :1: function "{t.text}" not defined')


def _call(name: str, args: list[Any]) -> Any:
    try:
        return FUNCTIONS[name](*args)
    except TemplateError:
        raise
    except (TypeError, ValueError, IndexError, KeyError, AttributeError) as exc:
        raise TemplateError(f"template: :1: error calling {name}: {exc}") from None


def _command(cmd: Command, dot: Any, scope: _Scope, piped: list[Any]) -> Any:
    first = cmd.operands[0]
    if isinstance(first, Token) and first.kind == "ident" and first.text in FUNCTIONS:
        args = [_operand(op, dot, scope) for op in cmd.operands[1:]] + piped
        return _call(first.text, args)
    if len(cmd.operands) > 1 or piped:
        what = first.text if isinstance(first, Token) else "(...)"
        raise TemplateError(f"template: :1: can't give argument to non-function {what}")
    return _operand(first, dot, scope)


def _pipeline(p: Pipeline, dot: Any, scope: _Scope) -> Any:
    value: Any = NO_VALUE
    for i, cmd in enumerate(p.commands):
        value = _command(cmd, dot, scope, [value] if i else [])
    if len(p.variables) == 1:
        scope.set(p.variables[0], value)
    return value


def _items(value: Any) -> list[tuple[Any, Any]]:
    if isinstance(value, Mapping):
        return [(k, value[k]) for k in sorted(value, key=str)]  # Go ranges over maps in key order
    if isinstance(value, (list, tuple)):
        return list(enumerate(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return [(i, i) for i in range(value)]
    if value is None or value is NO_VALUE:
        return []
    raise TemplateError(f"template: :1: range can't iterate over {shown(value)}")


def _run(nodes: list[Node], dot: Any, scope: _Scope, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, Pipeline):
            value = _pipeline(node, dot, scope)
            if not node.variables:
                out.append(shown(value))
        else:
            _block(node, dot, scope, out)


def _block(b: Block, dot: Any, scope: _Scope, out: list[str]) -> None:
    scope.frames.append({})
    try:
        if b.keyword == "range":
            variables = b.pipeline.variables
            value = _pipeline(Pipeline([], b.pipeline.commands), dot, scope)
            items = _items(value)
            for key, item in items:
                if len(variables) == 2:
                    scope.set(variables[0], key)
                    scope.set(variables[1], item)
                elif variables:
                    scope.set(variables[0], item)
                _run(b.body, item, scope, out)
            if not items:
                _run(b.otherwise, dot, scope, out)
            return
        value = _pipeline(b.pipeline, dot, scope)
        if truthy(value):
            _run(b.body, value if b.keyword == "with" else dot, scope, out)
        else:
            _run(b.otherwise, dot, scope, out)
    finally:
        scope.frames.pop()


def render(template: str, value: Any) -> str:
    """The template applied to `value` (`.`)."""
    out: list[str] = []
    try:
        _run(parse(_unescape(template)), value, _Scope(value), out)
    except RecursionError:
        raise TemplateError("template: :1: nested too deeply") from None
    return "".join(out)


def _unescape(template: str) -> str:
    r"""Docker turns the `\t` and `\n` users type in a shell into a tab and a newline."""
    return template.replace("\\t", "\t").replace("\\n", "\n")


# --------------------------------------------------------------------------- tables

MIN_WIDTH, PADDING = 10, 3  # Docker's tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)


def table(template: str, rows: Sequence[Any], headers: Mapping[str, str] | None = None) -> str:
    """`table FORMAT`: a header row, then each row; cells separated by tabs are aligned."""
    body = _unescape(template[len("table"):].lstrip(" "))
    names = {name for row in rows if isinstance(row, Mapping) for name in row}
    names |= set(headers or {})
    titles = {name: (headers or {}).get(name, name.upper()) for name in names}
    lines = [render(body, titles)] + [render(body, row) for row in rows]
    return tabwriter("\n".join(lines) + "\n")


def tabwriter(text: str) -> str:
    """Align tab-terminated cells of consecutive lines: Go's text/tabwriter, as Docker sets it."""
    lines = text.split("\n")
    cells = [line.split("\t") for line in lines]
    columns = max((len(c) for c in cells), default=1) - 1
    widths = [0] * columns
    for row in cells:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell) + PADDING, MIN_WIDTH)
    out = []
    for row in cells:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        out.append("".join(padded) + row[-1])
    return "\n".join(out)
