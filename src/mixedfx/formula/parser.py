"""Tokenizer and parser for R model formulas.

The parser is an operator-precedence parser with explicit stacks (no recursion), so a
formula with thousands of terms or parentheses nested thousands deep parses; names may
use any Unicode letters, as R allows (``Réaction``).

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
  | (?P<name>(?:[^\W\d_]|\.(?!\d))[\w.]*)
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
            ch = text[pos]
            hint = ""
            if ch == "`":
                hint = "; a backtick-quoted name needs a closing backtick"
            elif ch in "\"'":
                hint = "; a string needs a closing quote"
            raise FormulaSyntaxError(f"unexpected character {ch!r}{hint}", text, pos)
        kind = m.lastgroup
        value = m.group()
        if kind == "backtick":
            if len(value) == 2:
                raise FormulaSyntaxError("empty backtick-quoted name ``", text, pos)
            tokens.append(Token("NAME", value[1:-1], pos))
        elif kind == "string":
            tokens.append(Token("STRING", value[1:-1], pos))
        elif kind != "ws":
            tokens.append(Token(kind.upper(), value, pos))
        pos = m.end()
    tokens.append(Token("END", "", len(text)))
    return tokens


# Binary operators by precedence (higher binds tighter); prefix +/- sit between ':' and '^'.
_BINARY = {"|": 1, "||": 1, "==": 2, "!=": 2, "<": 2, ">": 2, "<=": 2, ">=": 2,
           "+": 3, "-": 3, "*": 4, "/": 4, ":": 6, "^": 8}
_SPECIAL_PREC = 5       # %in%, %any%
_PREFIX_PREC = 7


def _precedence(op: str) -> int:
    return _SPECIAL_PREC if op.startswith("%") else _BINARY[op]


class _Frame:
    """One level of nesting: the whole formula side, a parenthesis or a call's argument list."""
    __slots__ = ("kind", "open", "operands", "operators", "args", "argname")

    def __init__(self, kind: str, open_tok: Token | None = None):
        self.kind = kind            # "top", "paren" or "call"
        self.open = open_tok        # the '(' token, or the function-name token of a call
        self.operands: list[Node] = []
        self.operators: list[tuple[str, Token]] = []   # (kind "bin"/"pre", token)
        self.args: list[Arg] = []
        self.argname: str | None = None


class _Parser:
    """Operator-precedence parser with explicit stacks: no recursion, so formulas of any
    length or nesting depth parse (the grammar is the recursive one in the module docstring)."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    # -- helpers -------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def error(self, message: str, pos: int | None = None) -> FormulaSyntaxError:
        return FormulaSyntaxError(message, self.text, self.tok.pos if pos is None else pos)

    def advance(self) -> Token:
        t = self.tok
        self.i += 1
        return t

    def at_op(self, *ops: str) -> bool:
        return self.tok.kind == "OP" and self.tok.value in ops

    def found(self) -> str:
        return "end of formula" if self.tok.kind == "END" else repr(self.tok.value)

    def space_hint(self) -> str:
        """A hint when two names follow each other: probably a column name with a space."""
        prev = self.tokens[self.i - 1] if self.i > 0 else None
        if prev is not None and prev.kind == "NAME" and self.tok.kind in ("NAME", "NUMBER") \
                and self.text[prev.pos] != "`":
            return (f"; a column name with spaces must be quoted with backticks, as in "
                    f"`{prev.value} {self.tok.value}`")
        return ""

    # -- grammar -------------------------------------------------------------
    def formula(self) -> tuple[Node | None, Node]:
        lhs = None
        if not self.at_op("~"):
            lhs = self.expression()
        if not self.at_op("~"):
            raise self.error("a formula needs '~' between the response and the predictors" + self.space_hint())
        self.advance()
        rhs = self.expression()
        if self.tok.kind != "END":
            raise self.error(f"unexpected {self.tok.value!r}" + self.space_hint())
        return lhs, rhs

    def reduce_top(self, frame: _Frame) -> None:
        """Apply the operator on top of the frame's operator stack."""
        kind, op = frame.operators.pop()
        if kind == "pre":
            operand = frame.operands.pop()
            frame.operands.append(UnaryOp(op.pos, operand.end, op=op.value, operand=operand))
            return
        right = frame.operands.pop()
        left = frame.operands.pop()
        if op.value in ("|", "||"):
            frame.operands.append(Bar(left.start, right.end, lhs=left, group=right, double=op.value == "||"))
        else:
            frame.operands.append(BinOp(left.start, right.end, op=op.value, left=left, right=right))

    def finish(self, frame: _Frame) -> Node:
        while frame.operators:
            self.reduce_top(frame)
        return frame.operands.pop()

    def begin_argument(self, frame: _Frame) -> None:
        frame.argname = None
        if self.tok.kind == "NAME" and self.peek().kind == "EQ":
            frame.argname = self.advance().value
            self.advance()

    def expression(self) -> Node:
        """Parse one side of the formula; stops at '~' or the end (left for :meth:`formula`)."""
        frames = [_Frame("top")]
        expect_operand = True
        while True:
            frame = frames[-1]
            t = self.tok
            if expect_operand:
                if t.kind == "OP" and t.value in ("-", "+"):
                    frame.operators.append(("pre", self.advance()))
                elif t.kind == "NUMBER":
                    self.advance()
                    frame.operands.append(Number(t.pos, t.pos + len(t.value), value=float(t.value.rstrip("L")),
                                                 text=t.value))
                    expect_operand = False
                elif t.kind == "STRING":
                    self.advance()
                    frame.operands.append(String(t.pos, t.pos + len(t.value) + 2, value=t.value))
                    expect_operand = False
                elif t.kind == "NAME" and self.peek().kind == "LPAREN":
                    self.advance()
                    self.advance()
                    if self.tok.kind == "RPAREN":       # f(): a call without arguments
                        close = self.advance()
                        frame.operands.append(Call(t.pos, close.pos + 1, func=t.value, args=()))
                        expect_operand = False
                    else:
                        frames.append(_Frame("call", t))
                        self.begin_argument(frames[-1])
                elif t.kind == "NAME":
                    self.advance()
                    frame.operands.append(Name(t.pos, t.pos + len(t.value), id=t.value))
                    expect_operand = False
                elif t.kind == "LPAREN":
                    self.advance()
                    if self.tok.kind == "RPAREN":
                        raise self.error("empty parentheses")
                    frames.append(_Frame("paren", t))
                elif t.kind == "END":
                    raise self.error("formula ends where a term was expected")
                else:
                    raise self.error(f"unexpected {t.value!r}")
                continue
            # an operand was just read: an operator, a closing token or the end of this frame
            if t.kind == "OP" and t.value != "~":
                op = self.advance()
                if op.value in ("|", "||") and self.tok.kind in ("END", "RPAREN"):
                    raise self.error(f"missing grouping factor after '{op.value}'")
                if op.value in ("+", "-") and (self.tok.kind in ("END", "RPAREN") or self.at_op("|", "||", "~")):
                    raise self.error(f"missing term after '{op.value}'")
                prec = _precedence(op.value)
                while frame.operators:
                    kind, top = frame.operators[-1]
                    top_prec = _PREFIX_PREC if kind == "pre" else _precedence(top.value)
                    if top_prec > prec or (top_prec == prec and op.value != "^"):
                        self.reduce_top(frame)
                    else:
                        break
                frame.operators.append(("bin", op))
                expect_operand = True
                continue
            if frame.kind == "paren":
                if t.kind != "RPAREN":
                    raise self.error(f"expected ')', found {self.found()}" + self.space_hint())
                inner = self.finish(frame)
                close = self.advance()
                frames.pop()
                frames[-1].operands.append(Paren(frame.open.pos, close.pos + 1, inner=inner))
                continue
            if frame.kind == "call":
                if t.kind not in ("COMMA", "RPAREN"):
                    raise self.error(f"expected ',' or ')' in the call to {frame.open.value}()" + self.space_hint())
                frame.args.append(Arg(frame.argname, self.finish(frame)))
                if t.kind == "COMMA":
                    self.advance()
                    if self.tok.kind != "RPAREN":       # a trailing comma is allowed, as before
                        self.begin_argument(frame)
                        expect_operand = True
                        continue
                close = self.advance()
                frames.pop()
                frames[-1].operands.append(Call(frame.open.pos, close.pos + 1, func=frame.open.value,
                                                args=tuple(frame.args)))
                continue
            return self.finish(frame)       # top level: '~', ')' or anything else ends this side


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
