"""Filter expressions over event fields: the talk's KSQL ``WHERE`` step.

An expression such as ``model == 'e-sedan' and speed > 0`` is tokenized and parsed by hand
(recursive descent; nothing is ever ``eval``-ed), type-checked against the pipeline's schema,
and compiled to a `Filter`: a predicate over one validated event.

Grammar (keywords are case-insensitive, field names are not)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" expr ")" | "true" | "false" | predicate
    predicate  := operand op operand
                | field "is" ["not"] "null"
                | field ["not"] "in" "(" literal ("," literal)* [","] ")"
    op         := "==" | "=" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    operand    := field | literal
    literal    := number | 'string' | "string"        (a quote inside is doubled: 'it''s')

Numbers compare with numeric fields (time, sequence, features; booleans as 0 and 1), strings
with string fields; only numbers are ordered. Only nullable fields (e.g. a label) can be null,
and logic is two-valued: a null label is unequal to every string, so
``failure != 'flat_tire'`` keeps healthy events (SQL would drop them as unknown).

Example:
    >>> from lakeless.examples import car_fleet
    >>> from lakeless.schema import EventCodec
    >>> schema = car_fleet()
    >>> events = EventCodec(schema)
    >>> moving = compile_filter("model == 'e-sedan' and speed > 0 and failure is null", schema)
    >>> moving(events.from_dict(schema.example()))
    True
    >>> compile_filter("sped > 0", schema)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lakeless.preprocess.where.FilterError: unknown field 'sped' (did you mean 'speed'?) at ...
      sped > 0
      ^^^^
"""

from __future__ import annotations

import difflib
import enum
import math
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from lakeless.errors import LakelessError
from lakeless.schema import PipelineSchema

__all__ = ["MAX_DEPTH", "MAX_LENGTH", "Filter", "FilterError", "compile_filter"]

#: Longest accepted expression, in characters.
MAX_LENGTH: Final = 4096
#: Deepest accepted nesting of parentheses and ``not``.
MAX_DEPTH: Final = 64


class FilterError(LakelessError):
    """A filter expression is malformed or does not type-check.

    Attributes:
        expression: the expression as given.
        position: 0-based character offset of the problem.
        reason: the message without the position marker.
    """

    def __init__(self, reason: str, expression: str, position: int, length: int = 1) -> None:
        self.reason = reason
        self.expression = expression
        self.position = position
        marker = " " * position + "^" * max(1, length)
        super().__init__(f"{reason} at position {position}\n  {expression}\n  {marker}")


class _Kind(enum.Enum):
    NUMBER = "number"
    STRING = "string"


@dataclass(frozen=True)
class _FieldType:
    kind: _Kind
    nullable: bool


def _field_types(schema: PipelineSchema) -> dict[str, _FieldType]:
    return {
        f.name: _FieldType(_Kind.NUMBER if f.numeric else _Kind.STRING, f.nullable)
        for f in schema.fields
    }


# ---- tokenizer ---------------------------------------------------------------------------------


class _T(enum.Enum):
    NUMBER = "number"
    STRING = "string"
    NAME = "name"
    OP = "operator"
    LPAREN = "'('"
    RPAREN = "')'"
    COMMA = "','"
    END = "end of expression"


@dataclass(frozen=True)
class _Token:
    type: _T
    text: str
    pos: int
    value: Any = None


_TOKEN: Final = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
  | (?P<op>==|!=|<>|<=|>=|=|<|>)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
    """,
    re.X,
)
_KINDS: Final = {
    "number": _T.NUMBER,
    "name": _T.NAME,
    "string": _T.STRING,
    "op": _T.OP,
    "lparen": _T.LPAREN,
    "rparen": _T.RPAREN,
    "comma": _T.COMMA,
}
_KEYWORDS: Final = frozenset({"and", "or", "not", "is", "null", "in", "true", "false"})


def _tokenize(expression: str) -> Iterator[_Token]:
    pos = 0
    while pos < len(expression):
        match = _TOKEN.match(expression, pos)
        if match is None:
            char = expression[pos]
            if char in "'\"":
                raise FilterError("unterminated string", expression, pos)
            raise FilterError(f"unexpected character {char!r}", expression, pos)
        group = match.lastgroup
        assert group is not None
        text = match.group()
        end = match.end()
        if group == "number" and end < len(expression) and _is_word(expression[end]):
            raise FilterError(f"malformed number {text + expression[end]!r}", expression, pos)
        if group != "ws":
            yield _Token(_KINDS[group], text, pos, _literal(group, text, expression, pos))
        pos = end
    yield _Token(_T.END, "", len(expression))


def _is_word(char: str) -> bool:
    return char.isalnum() or char in "_."


def _literal(group: str, text: str, expression: str, pos: int) -> Any:
    if group == "string":
        quote = text[0]
        return text[1:-1].replace(quote * 2, quote)
    if group != "number":
        return None
    number: int | float
    if re.fullmatch(r"[-+]?\d+", text):
        number = int(text)
        if abs(number) > 2**63 - 1:
            number = float(number)
    else:
        number = float(text)
    if not math.isfinite(number):
        raise FilterError(f"number {text} is out of range", expression, pos, len(text))
    return number


# ---- syntax tree -------------------------------------------------------------------------------

Predicate = Callable[[Any], bool]

_OPS: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "==": operator.eq,
    "=": operator.eq,
    "!=": operator.ne,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_FLIPPED: Final = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


class _Node:
    def predicate(self) -> Predicate:
        raise NotImplementedError


@dataclass(frozen=True)
class _Const(_Node):
    value: bool

    def predicate(self) -> Predicate:
        value = self.value
        return lambda event: value


@dataclass(frozen=True)
class _Compare(_Node):
    field: str
    op: str
    value: Any

    def predicate(self) -> Predicate:
        get, compare, value = operator.attrgetter(self.field), _OPS[self.op], self.value
        return lambda event: bool(compare(get(event), value))


@dataclass(frozen=True)
class _CompareFields(_Node):
    left: str
    op: str
    right: str

    def predicate(self) -> Predicate:
        left, right = operator.attrgetter(self.left), operator.attrgetter(self.right)
        compare = _OPS[self.op]
        return lambda event: bool(compare(left(event), right(event)))


@dataclass(frozen=True)
class _IsNull(_Node):
    field: str

    def predicate(self) -> Predicate:
        get = operator.attrgetter(self.field)
        return lambda event: get(event) is None


@dataclass(frozen=True)
class _In(_Node):
    field: str
    values: frozenset[Any]

    def predicate(self) -> Predicate:
        get, values = operator.attrgetter(self.field), self.values
        return lambda event: get(event) in values


@dataclass(frozen=True)
class _Not(_Node):
    inner: _Node

    def predicate(self) -> Predicate:
        inner = self.inner.predicate()
        return lambda event: not inner(event)


@dataclass(frozen=True)
class _And(_Node):
    left: _Node
    right: _Node

    def predicate(self) -> Predicate:
        left, right = self.left.predicate(), self.right.predicate()
        return lambda event: left(event) and right(event)


@dataclass(frozen=True)
class _Or(_Node):
    left: _Node
    right: _Node

    def predicate(self) -> Predicate:
        left, right = self.left.predicate(), self.right.predicate()
        return lambda event: left(event) or right(event)


# ---- parser ------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, expression: str, fields: dict[str, _FieldType]) -> None:
        self.expression = expression
        self.types = fields
        self.tokens = list(_tokenize(expression))
        self.index = 0
        self.depth = 0
        self.fields: set[str] = set()

    @property
    def token(self) -> _Token:
        # A property, so mypy narrows ``self.token.type`` across `advance`; use `peek` there.
        return self.tokens[self.index]

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def error(self, reason: str, token: _Token | None = None) -> FilterError:
        token = token or self.token
        return FilterError(reason, self.expression, token.pos, len(token.text))

    def advance(self) -> _Token:
        token = self.token
        if token.type is not _T.END:
            self.index += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.token
        if token.type is _T.NAME and token.text.lower() == word:
            self.index += 1
            return True
        return False

    def expect(self, kind: _T, what: str) -> _Token:
        if self.token.type is not kind:
            raise self.error(f"expected {what}, found {_describe(self.token)}")
        return self.advance()

    def parse(self) -> _Node:
        if self.token.type is _T.END:
            raise self.error("empty expression")
        node = self.or_expr()
        if self.peek().type is not _T.END:
            raise self.error(f"expected 'and', 'or' or the end, found {_describe(self.peek())}")
        return node

    def or_expr(self) -> _Node:
        node = self.and_expr()
        while self.keyword("or"):
            node = _Or(node, self.and_expr())
        return node

    def and_expr(self) -> _Node:
        node = self.not_expr()
        while self.keyword("and"):
            node = _And(node, self.not_expr())
        return node

    def not_expr(self) -> _Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested deeper than {MAX_DEPTH} levels")
        try:
            return self._not_expr()
        finally:
            self.depth -= 1

    def _not_expr(self) -> _Node:
        if self.keyword("not"):
            return _Not(self.not_expr())
        token = self.token
        if token.type is _T.LPAREN:
            self.advance()
            node = self.or_expr()
            self.expect(_T.RPAREN, "')'")
            return node
        if token.type is _T.NAME and token.text.lower() in ("true", "false"):
            self.advance()
            if self.token.type is _T.OP:
                raise self.error("no field is boolean; true/false can only stand alone", token)
            return _Const(token.text.lower() == "true")
        return self.predicate()

    def predicate(self) -> _Node:
        left = self.operand()
        token = self.token
        if token.type is _T.OP:
            self.advance()
            return self.comparison(left, token, self.operand())
        if left.type is not _T.NAME:
            raise self.error(
                f"expected a comparison after {_describe(left)}, found {_describe(token)}"
            )
        if self.keyword("is"):
            negate = self.keyword("not")
            null = self.token
            if not self.keyword("null"):
                raise self.error(f"expected 'null' after 'is', found {_describe(null)}")
            if not self.types[left.text].nullable:
                raise self.error(f"field '{left.text}' is never null", left)
            node: _Node = _IsNull(left.text)
            return _Not(node) if negate else node
        negate = self.keyword("not")
        if self.keyword("in"):
            node = _In(left.text, self.literal_list(left))
            return _Not(node) if negate else node
        raise self.error(
            f"expected a comparison operator, 'is' or 'in' after field '{left.text}', "
            f"found {_describe(self.token)}"
        )

    def operand(self) -> _Token:
        token = self.token
        if token.type in (_T.NUMBER, _T.STRING):
            return self.advance()
        if token.type is _T.NAME:
            word = token.text.lower()
            if word == "null":
                raise self.error("compare with null using 'is null' or 'is not null'")
            if word in ("true", "false"):
                raise self.error("no field is boolean; true/false can only stand alone")
            if word in _KEYWORDS:
                raise self.error(f"expected a field or a literal, found keyword '{token.text}'")
            if token.text not in self.types:
                raise self.error(_unknown_field(token.text, self.types))
            if self.tokens[self.index + 1].type is _T.LPAREN:
                raise self.error("function calls are not supported", token)
            self.fields.add(token.text)
            return self.advance()
        raise self.error(f"expected a field or a literal, found {_describe(token)}")

    def comparison(self, left: _Token, op: _Token, right: _Token) -> _Node:
        symbol = op.text
        if left.type is not _T.NAME and right.type is not _T.NAME:
            raise self.error("a comparison needs at least one field", left)
        if left.type is not _T.NAME:
            left, right = right, left
            symbol = _FLIPPED.get(symbol, symbol)
        kind = self.types[left.text].kind
        other = self.types[right.text].kind if right.type is _T.NAME else _literal_kind(right)
        if other is not kind:
            what = (
                f"{other.value} field '{right.text}'" if right.type is _T.NAME else _describe(right)
            )
            raise self.error(f"cannot compare {kind.value} field '{left.text}' with {what}", op)
        if kind is _Kind.STRING and symbol not in ("==", "=", "!=", "<>"):
            raise self.error(f"strings only support == and !=, not {symbol}", op)
        if right.type is _T.NAME:
            return _CompareFields(left.text, symbol, right.text)
        return _Compare(left.text, symbol, right.value)

    def literal_list(self, field: _Token) -> frozenset[Any]:
        self.expect(_T.LPAREN, "'(' after 'in'")
        kind = self.types[field.text].kind
        values = []
        while True:
            token = self.token
            if token.type not in (_T.NUMBER, _T.STRING):
                raise self.error(f"expected a literal in the 'in' list, found {_describe(token)}")
            if _literal_kind(token) is not kind:
                raise self.error(
                    f"cannot compare {kind.value} field '{field.text}' with {_describe(token)}"
                )
            values.append(self.advance().value)
            if self.token.type is _T.COMMA:
                self.advance()
                if self.peek().type is _T.RPAREN:
                    break
                continue
            break
        self.expect(_T.RPAREN, "',' or ')' in the 'in' list")
        return frozenset(values)


def _literal_kind(token: _Token) -> _Kind:
    return _Kind.NUMBER if token.type is _T.NUMBER else _Kind.STRING


def _describe(token: _Token) -> str:
    if token.type is _T.END:
        return "the end of the expression"
    if token.type is _T.NAME:
        return f"'{token.text}'"
    if token.type in (_T.NUMBER, _T.STRING):
        return f"{token.type.value} {token.text}"
    return repr(token.text)


def _unknown_field(name: str, fields: dict[str, _FieldType]) -> str:
    close = difflib.get_close_matches(name, list(fields), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown field '{name}'{hint}"


# ---- compiled filter ---------------------------------------------------------------------------


class Filter:
    """A compiled filter expression; call it on a validated event.

    Build with `compile_filter`.

    Attributes:
        expression: the source text.
        fields: the event fields the expression reads.
    """

    def __init__(self, expression: str, tree: _Node, fields: frozenset[str]) -> None:
        self.expression = expression
        self.fields = fields
        self._predicate = tree.predicate()

    def __repr__(self) -> str:
        return f"Filter({self.expression!r})"

    def __call__(self, event: Any) -> bool:
        """True if ``event`` passes the filter."""
        return self._predicate(event)


def compile_filter(expression: str, schema: PipelineSchema) -> Filter:
    """Parse, type-check against ``schema`` and compile a filter expression.

    Raises:
        FilterError: the expression is malformed, names an unknown field, or compares values
            of different types; the message points at the position.
    """
    if len(expression) > MAX_LENGTH:
        raise FilterError(
            f"expression too long: {len(expression)} characters, at most {MAX_LENGTH}",
            expression[:40] + "...",
            0,
        )
    parser = _Parser(expression, _field_types(schema))
    tree = parser.parse()
    return Filter(expression, tree, frozenset(parser.fields))
