"""A shell command line cut into a pipeline: words, `$VAR` expansion, `|`, `>` and `>>`.

The rules are a small part of POSIX sh's, the part people type every day:
* blanks separate words; `'...'` is literal; `"..."` keeps blanks and expands `$`; a backslash
  takes the next character literally (inside double quotes only before `"`, `\\`, `$`);
* `$NAME`, `${NAME}` are the variable's value (empty if unset), `$?` the last status, `$$` the
  shell's pid; an unquoted expansion is one word (no field splitting) and vanishes if empty;
* `|` joins stages, `> FILE` / `>> FILE` send a stage's output to a file (truncate / append);
  a quoted `'|'` or `">"` is an ordinary word;
* words `NAME=value` before a stage's command are assignments (Stage.assigns).

Why here: the shell is one program, and its parser is the part worth testing on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

OPERATORS = ("|", ">>", ">")
NAME_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
NAME_CHARS = NAME_START + "0123456789"


@dataclass
class Stage:
    """One command of a pipeline."""

    words: list[str] = field(default_factory=list)
    redirect: tuple[str, str] | None = None  # (">" or ">>", path)
    assigns: dict[str, str] = field(default_factory=dict)


class Token(str):
    """An operator (`|`, `>`, `>>`), as opposed to a word that reads the same (quoted)."""


def is_name(text: str) -> bool:
    return bool(text) and text[0] in NAME_START and all(c in NAME_CHARS for c in text)


def tokenize(line: str, env: Mapping[str, str]) -> list[str]:
    """Words (str) and operators (Token), with quotes removed and variables expanded.
    ValueError for an unterminated quote or `${`."""
    out: list[str] = []
    word: list[str] = []
    have_word = False  # a quoted empty string "" is a word too
    i, n = 0, len(line)

    def end_word() -> None:
        nonlocal word, have_word
        text = "".join(word)
        if text or have_word:
            out.append(text)
        word, have_word = [], False

    while i < n:
        c = line[i]
        if c in " \t\n":
            end_word()
            i += 1
        elif c == "|":
            end_word()
            out.append(Token("|"))
            i += 1
        elif c == ">":
            end_word()
            op = ">>" if line.startswith(">>", i) else ">"
            out.append(Token(op))
            i += len(op)
        elif c == "'":
            j = line.find("'", i + 1)
            if j < 0:
                raise ValueError("unterminated ' quote")
            word.append(line[i + 1:j])
            have_word = True
            i = j + 1
        elif c == '"':
            i += 1
            have_word = True
            while True:
                if i >= n:
                    raise ValueError('unterminated " quote')
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and line[i + 1] in '"\\$':
                    word.append(line[i + 1])
                    i += 2
                elif c == "$":
                    text, i = expand(line, i, env)
                    word.append(text)
                else:
                    word.append(c)
                    i += 1
        elif c == "\\":
            if i + 1 < n:
                word.append(line[i + 1])
                have_word = True
            i += 2
        elif c == "$":
            text, i = expand(line, i, env)
            word.append(text)
        else:
            word.append(c)
            i += 1
    end_word()
    return out


def expand(line: str, i: int, env: Mapping[str, str]) -> tuple[str, int]:
    """The value of the `$...` at line[i], and the index after it. A `$` not followed by a name
    (`$ `, `5$`) stays a `$`."""
    rest = line[i + 1:]
    if rest[:1] == "{":
        j = rest.find("}")
        if j < 0:
            raise ValueError("unterminated ${")
        name = rest[1:j]
        if not (is_name(name) or name in ("?", "$")):
            raise ValueError(f"${{{name}}}: bad substitution")
        return env.get(name, ""), i + 2 + j
    if rest[:1] in ("?", "$"):
        return env.get(rest[0], ""), i + 2
    j = 0
    while j < len(rest) and rest[j] in (NAME_CHARS if j else NAME_START):
        j += 1
    if j == 0:
        return "$", i + 1
    return env.get(rest[:j], ""), i + 1 + j


def parse(line: str, env: Mapping[str, str]) -> list[Stage]:
    """The stages of a command line ([] for a blank line). ValueError with the reason, as sh
    says it: `syntax error near |`, `> needs a file name`."""
    stages = [Stage()]
    tokens = tokenize(line, env)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        stage = stages[-1]
        if isinstance(tok, Token) and tok == "|":
            if not stage.words:
                raise ValueError("syntax error near |")
            stages.append(Stage())
        elif isinstance(tok, Token):
            if i + 1 >= len(tokens) or isinstance(tokens[i + 1], Token):
                raise ValueError(f"{tok} needs a file name")
            stage.redirect = (str(tok), str(tokens[i + 1]))
            i += 1
        elif not stage.words and "=" in tok and is_name(tok.split("=", 1)[0]):
            name, value = tok.split("=", 1)
            stage.assigns[name] = value
        else:
            stage.words.append(str(tok))
        i += 1
    last = stages[-1]
    if not last.words and (len(stages) > 1 or last.redirect):
        raise ValueError("syntax error near |" if len(stages) > 1 else "a redirect needs a command")
    if len(stages) == 1 and not last.words and not last.assigns:
        return []
    return stages
