"""Tokenizer and recursive-descent parser for R model formulas.

Operator precedence follows R (lowest first)::

    ~            formula
    | ||         random-effects bar (lme4)
    == != < > <= >=
    + -          (binary)
    * /
    %in% %any%
    :
    + -          (unary)
    ^            (right associative)

so ``(1 + x | g)`` is ``((1 + x) | g)`` and ``-a^2`` is ``-(a^2)``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .ast import Arg, Bar, BinOp, Call, Name, Node, Number, Paren, String, UnaryOp

__all__ = ["FormulaSyntaxError", "parse", "Token", "tokenize"]


class FormulaSyntaxError(ValueError):
    """A formula that cannot be parsed; the message shows a caret under the problem."""

    def __init__(self, message: str, text: str, pos: int):
        self.text = text
        self.pos = pos
        self.reason = message
        caret = " " * (pos + 2) + "^"
        super().__init__(f"{message} (at position {pos})\n  {text}\n{caret}")


@dataclass(frozen=True)
class Token:
    kind: str   # NAME NUMBER STRING OP LPAREN RPAREN COMMA EQ END
    value: str
    pos: int


_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?L?)
  | (?P<name>(?:[A-Za-z]|\.(?![0-9]))[A-Za-z0-9._]*)
  | (?P<backtick>`[^`]*`)
  | (?P<string>"[^"]*"|'[^']*')
  | (?P<op>%[^%]*%|\|\||<=|>=|==|!=|[~+\-*/:^|<>])
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<eq>=)
""", re.VERBOSE)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise FormulaSyntaxError(f"unexpected character {text[pos]!r}", text, pos)
        kind = m.lastgroup
        value = m.group()
        if kind == "backtick":
            tokens.append(Token("NAME", value[1:-1], pos))
        elif kind == "string":
            tokens.append(Token("STRING", value[1:-1], pos))
        elif kind != "ws":
            tokens.append(Token(kind.upper(), value, pos))
        pos = m.end()
    tokens.append(Token("END", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    # -- helpers -------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, message: str, pos: int | None = None) -> FormulaSyntaxError:
        return FormulaSyntaxError(message, self.text, self.tok.pos if pos is None else pos)

    def advance(self) -> Token:
        t = self.tok
        self.i += 1
        return t

    def at_op(self, *ops: str) -> bool:
        return self.tok.kind == "OP" and self.tok.value in ops

    def expect(self, kind: str, what: str) -> Token:
        if self.tok.kind != kind:
            found = "end of formula" if self.tok.kind == "END" else repr(self.tok.value)
            raise self.error(f"expected {what}, found {found}")
        return self.advance()

    # -- grammar -------------------------------------------------------------
    def formula(self) -> tuple[Node | None, Node]:
        lhs = None
        if not self.at_op("~"):
            lhs = self.bar()
        if not self.at_op("~"):
            raise self.error("a formula needs '~' between the response and the predictors")
        self.advance()
        rhs = self.bar()
        if self.tok.kind != "END":
            raise self.error(f"unexpected {self.tok.value!r}")
        return lhs, rhs

    def bar(self) -> Node:
        left = self.comparison()
        while self.at_op("|", "||"):
            op = self.advance()
            if self.tok.kind in ("END", "RPAREN"):
                raise self.error(f"missing grouping factor after '{op.value}'")
            right = self.comparison()
            left = Bar(left.start, right.end, lhs=left, group=right, double=op.value == "||")
        return left

    def comparison(self) -> Node:
        left = self.additive()
        while self.at_op("==", "!=", "<", ">", "<=", ">="):
            op = self.advance().value
            right = self.additive()
            left = BinOp(left.start, right.end, op=op, left=left, right=right)
        return left

    def additive(self) -> Node:
        left = self.multiplicative()
        while self.at_op("+", "-"):
            op = self.advance()
            if self.tok.kind in ("END", "RPAREN") or self.at_op("|", "||", "~"):
                raise self.error(f"missing term after '{op.value}'")
            right = self.multiplicative()
            left = BinOp(left.start, right.end, op=op.value, left=left, right=right)
        return left

    def multiplicative(self) -> Node:
        left = self.special()
        while self.at_op("*", "/"):
            op = self.advance().value
            right = self.special()
            left = BinOp(left.start, right.end, op=op, left=left, right=right)
        return left

    def special(self) -> Node:
        left = self.colon()
        while self.tok.kind == "OP" and self.tok.value.startswith("%"):
            op = self.advance().value
            right = self.colon()
            left = BinOp(left.start, right.end, op=op, left=left, right=right)
        return left

    def colon(self) -> Node:
        left = self.unary()
        while self.at_op(":"):
            self.advance()
            right = self.unary()
            left = BinOp(left.start, right.end, op=":", left=left, right=right)
        return left

    def unary(self) -> Node:
        if self.at_op("-", "+"):
            op = self.advance()
            operand = self.unary()
            return UnaryOp(op.pos, operand.end, op=op.value, operand=operand)
        return self.power()

    def power(self) -> Node:
        base = self.primary()
        if self.at_op("^"):
            self.advance()
            exponent = self.unary()   # right associative, binds tighter than unary minus on the left
            return BinOp(base.start, exponent.end, op="^", left=base, right=exponent)
        return base

    def primary(self) -> Node:
        t = self.tok
        if t.kind == "NUMBER":
            self.advance()
            return Number(t.pos, t.pos + len(t.value), value=float(t.value.rstrip("L")), text=t.value)
        if t.kind == "STRING":
            self.advance()
            return String(t.pos, t.pos + len(t.value) + 2, value=t.value)
        if t.kind == "NAME":
            self.advance()
            if self.tok.kind == "LPAREN":
                return self.call(t)
            end = t.pos + len(t.value)
            return Name(t.pos, end, id=t.value)
        if t.kind == "LPAREN":
            self.advance()
            if self.tok.kind == "RPAREN":
                raise self.error("empty parentheses")
            inner = self.bar()
            close = self.expect("RPAREN", "')'")
            return Paren(t.pos, close.pos + 1, inner=inner)
        if t.kind == "END":
            raise self.error("formula ends where a term was expected")
        raise self.error(f"unexpected {t.value!r}")

    def call(self, name: Token) -> Node:
        self.advance()  # '('
        args: list[Arg] = []
        while self.tok.kind != "RPAREN":
            argname = None
            if self.tok.kind == "NAME" and self.tokens[self.i + 1].kind == "EQ":
                argname = self.advance().value
                self.advance()
            args.append(Arg(argname, self.bar()))
            if self.tok.kind == "COMMA":
                self.advance()
            elif self.tok.kind != "RPAREN":
                raise self.error(f"expected ',' or ')' in the call to {name.value}()")
        close = self.advance()
        return Call(name.pos, close.pos + 1, func=name.value, args=tuple(args))


def parse(text: str) -> tuple[Node | None, Node]:
    """Parse ``text`` into ``(response, rhs)`` syntax trees.

    Raises
    ------
    FormulaSyntaxError
        With the position of the problem and a caret under it.
    """
    if not isinstance(text, str):
        raise TypeError(f"a formula must be a string, got {type(text).__name__}")
    if not text.strip():
        raise FormulaSyntaxError("the formula is empty", text, 0)
    return _Parser(text).formula()
