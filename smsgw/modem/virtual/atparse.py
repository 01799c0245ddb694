"""Parsing an AT command line the way a modem does (ITU-T V.250 section 5.2-5.4, 3GPP TS 27.007 section 4).

A line is `AT` followed by any number of basic commands (`E0`, `V1`, `&F`, `S0=0`) and extended commands
(`+CMGF=0`, `^CURC?`) separated by `;`. Extended command names and basic commands are case-insensitive; text
inside double quotes is kept as typed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

_EXTENDED_PREFIXES: Final = frozenset("+^$%*#")


class Op(enum.Enum):
    EXECUTE = ""  # AT+CMD
    READ = "?"  # AT+CMD?
    TEST = "=?"  # AT+CMD=?
    SET = "="  # AT+CMD=<args>


@dataclass(frozen=True, slots=True)
class Command:
    """One command of a command line: `name` upper-cased (`+CMGS`, `E`, `&F`, `S3`), its operation and
    the raw argument text after `=` (quotes kept)."""

    name: str
    op: Op
    args: str = ""


class LineSyntaxError(ValueError):
    """The line is not a valid AT command line; the modem answers ERROR."""


def parse_line(line: str) -> list[Command]:
    """Split a command line (without its terminator) into commands. Raises LineSyntaxError."""
    if line[:2].upper() != "AT":
        raise LineSyntaxError("a command line starts with AT")
    rest = line[2:]
    commands: list[Command] = []
    i = 0
    while i < len(rest):
        char = rest[i]
        if char in " ;":
            i += 1
        elif char in _EXTENDED_PREFIXES:
            end = _extended_end(rest, i)
            commands.append(_extended(rest[i:end]))
            i = end
        elif char == "&":
            name, i = _basic_with_number(rest, i + 2, "&" + rest[i + 1 : i + 2].upper())
            commands.append(name)
        elif char.upper() == "S" and rest[i + 1 : i + 2].isdigit():
            commands_s, i = _s_register(rest, i + 1)
            commands.append(commands_s)
        elif char.upper() == "D":
            # ATD takes the rest of the line as the dial string (V.250 6.3.1).
            commands.append(Command("D", Op.SET, rest[i + 1 :]))
            i = len(rest)
        elif char.isalpha():
            command, i = _basic_with_number(rest, i + 1, char.upper())
            commands.append(command)
        else:
            raise LineSyntaxError(f"unexpected {char!r} in command line")
    return commands


def _extended_end(text: str, start: int) -> int:
    """Index of the `;` ending the extended command at `start` (outside quotes), or the end of the text."""
    quoted = False
    for index in range(start, len(text)):
        char = text[index]
        if char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            return index
    if quoted:
        raise LineSyntaxError("unterminated string")
    return len(text)


def _extended(text: str) -> Command:
    name_end = 1
    while name_end < len(text) and (text[name_end].isalnum() or text[name_end] in "_-"):
        name_end += 1
    name = text[:name_end].upper()
    if len(name) < 2:
        raise LineSyntaxError(f"missing command name after {text[:1]!r}")
    tail = text[name_end:].strip()
    if tail == "":
        return Command(name, Op.EXECUTE)
    if tail == "?":
        return Command(name, Op.READ)
    if tail == "=?":
        return Command(name, Op.TEST)
    if tail.startswith("="):
        return Command(name, Op.SET, tail[1:].strip())
    raise LineSyntaxError(f"unexpected {tail!r} after {name}")


def _basic_with_number(text: str, index: int, name: str) -> tuple[Command, int]:
    start = index
    while index < len(text) and text[index].isdigit():
        index += 1
    return Command(name, Op.SET if index > start else Op.EXECUTE, text[start:index]), index


def _s_register(text: str, index: int) -> tuple[Command, int]:
    start = index
    while index < len(text) and text[index].isdigit():
        index += 1
    name = "S" + text[start:index]
    if text[index : index + 1] == "?":
        return Command(name, Op.READ), index + 1
    if text[index : index + 1] == "=":
        value_start = index = index + 1
        while index < len(text) and text[index].isdigit():
            index += 1
        return Command(name, Op.SET, text[value_start:index]), index
    raise LineSyntaxError(f"{name} needs ? or =")


def split_args(text: str) -> list[str | None]:
    """Comma-separated arguments: quoted strings without their quotes, empty positions as None."""
    args: list[str | None] = []
    current: list[str] = []
    present = False
    quoted = False
    for char in text:
        if quoted:
            if char == '"':
                quoted = False
            else:
                current.append(char)
        elif char == '"':
            quoted = True
            present = True
        elif char == ",":
            args.append("".join(current) if present or current else None)
            current, present = [], False
        elif not char.isspace():
            current.append(char)
    if quoted:
        raise LineSyntaxError("unterminated string")
    if text.strip():
        args.append("".join(current) if present or current else None)
    return args
