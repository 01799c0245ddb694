"""Personas of the virtual modem: how one firmware differs on the wire from the plain TS 27.005 modem (the
fake-device-per-firmware idea of zigpy/bellows), read from the same `hw_fixtures/` directories as the driver's quirks.

A fixture directory with a `virtual.toml` next to its `quirks.toml` is a persona (format: hw_fixtures/README.md).
The persona is checked against the quirks file beside it when it is loaded, so the virtual modem and the driver
cannot drift apart: the driver must recognise the persona's identification, its preferred `+CNMI` must be one the
persona accepts, and every unsolicited line the persona volunteers must be in the quirks' unsolicited table.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from smsgw import __version__
from smsgw.modem.quirks import DEFAULT_QUIRKS_DIR, ModemQuirks, QuirksError, load_quirks_file

PERSONA_FILE: Final = "virtual.toml"


class PersonaError(Exception):
    """A virtual.toml that cannot be used, or one that disagrees with its quirks.toml; the message names both."""


@dataclass(frozen=True, slots=True)
class ModemPersona:
    name: str = "generic"
    manufacturer: str = "smsgw"
    model: str = "Virtual GSM modem"
    revision: str = __version__
    storages: tuple[str, ...] = ("SM", "ME")
    # `AT+CNMI=?` as the firmware answers it; a `+CNMI=` value outside these lists is refused (+CMS ERROR: 303).
    cnmi_test: str = "(0-3),(0-3),(0,2),(0-2),(0,1)"
    # Unsolicited lines once the SIM is ready after power-on or reset (SIMCom: "Call Ready", "SMS Ready").
    ready_lines: tuple[str, ...] = ()
    # Vendor status lines every `periodic_interval_s` ("{rssi}" is replaced by the signal); 0 means never.
    periodic_lines: tuple[str, ...] = ()
    periodic_interval_s: float = 0.0
    # The vendor command that turns the periodic lines off (`=0`) and on (`=1`), e.g. Huawei's "^CURC".
    periodic_switch: str = ""
    # Huawei sticks status lines anywhere, also between `> ` and `+CMGS:`; others wait for the command to end.
    lines_mid_command: bool = False
    # Vendor commands answered with fixed lines then OK, keyed as typed after AT: "^SYSINFO", "^HWVER?",
    # "^X=?", or "^X=" for a set command with any value.
    answers: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    source: str = ""

    @property
    def cnmi_allowed(self) -> tuple[frozenset[int], ...]:
        return _parse_lists(self.cnmi_test)


GENERIC_PERSONA: Final = ModemPersona()

_LIST: Final = re.compile(r"\(([0-9,\- ]*)\)")


def _parse_lists(text: str) -> tuple[frozenset[int], ...]:
    """`(0-2),(0,1)` -> ({0, 1, 2}, {0, 1}): the value lists of a TS 27.007 test command answer."""
    lists: list[frozenset[int]] = []
    for body in _LIST.findall(text):
        values: set[int] = set()
        for item in filter(None, (part.strip() for part in body.split(","))):
            low, _, high = item.partition("-")
            values.update(range(int(low), int(high or low) + 1))
        lists.append(frozenset(values))
    return tuple(lists)


_FIELD_TYPES: Final[dict[str, type]] = {
    "persona": str,
    "manufacturer": str,
    "model": str,
    "revision": str,
    "storages": tuple,
    "cnmi_test": str,
    "ready_lines": tuple,
    "periodic_lines": tuple,
    "periodic_interval_s": float,
    "periodic_switch": str,
    "lines_mid_command": bool,
    "answers": dict,
    "source": str,
}


def load_persona_file(path: Path) -> ModemPersona:
    """One `virtual.toml`, checked against the `quirks.toml` in the same directory."""
    try:
        with open(path, "rb") as file:
            raw: dict[str, Any] = tomllib.load(file)
        quirks = load_quirks_file(path.parent / "quirks.toml")
    except (OSError, tomllib.TOMLDecodeError, QuirksError) as exc:
        raise PersonaError(f"{path}: {exc}") from exc
    values: dict[str, Any] = {}
    for key, value in raw.items():
        expected = _FIELD_TYPES.get(key)
        if expected is None:
            raise PersonaError(f"{path}: {key}: unknown key (known: {', '.join(_FIELD_TYPES)})")
        if expected is tuple and isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = tuple(value)
        elif expected is float and isinstance(value, int):
            value = float(value)
        elif expected is dict and isinstance(value, dict):
            if not all(isinstance(v, list) and all(isinstance(line, str) for line in v) for v in value.values()):
                raise PersonaError(f"{path}: {key}: every answer must be a list of lines")
            value = MappingProxyType({name.upper(): tuple(lines) for name, lines in value.items()})
        elif not isinstance(value, expected):
            raise PersonaError(f"{path}: {key}: must be {expected.__name__}")
        values["name" if key == "persona" else key] = value
    if "name" not in values:
        raise PersonaError(f"{path}: persona: required key is missing")
    persona = ModemPersona(**values)
    _check_against_quirks(path, persona, quirks)
    return persona


def _check_against_quirks(path: Path, persona: ModemPersona, quirks: ModemQuirks) -> None:
    where = f"{path} against {quirks.name}/quirks.toml"
    if not quirks.matches(persona.manufacturer, persona.model):
        raise PersonaError(f"{where}: manufacturer/model are not recognised by the quirks' patterns")
    allowed = persona.cnmi_allowed
    if len(allowed) != 5 or any(value not in values for value, values in zip(quirks.cnmi, allowed, strict=True)):
        raise PersonaError(f"{where}: cnmi_test {persona.cnmi_test} does not allow the quirks' cnmi {quirks.cnmi}")
    prefixes = tuple(quirks.unsolicited_table())
    for line in persona.ready_lines + persona.periodic_lines:
        if not line.startswith(prefixes) and not line.startswith(("+CPIN:", "+CREG:")):
            raise PersonaError(f"{where}: unsolicited line {line!r} is not in the quirks' unsolicited list")


@functools.cache
def personas(directory: Path = DEFAULT_QUIRKS_DIR) -> Mapping[str, ModemPersona]:
    """`generic` and every persona under `directory`, by name (read once)."""
    found: dict[str, ModemPersona] = {GENERIC_PERSONA.name: GENERIC_PERSONA}
    for path in sorted(directory.glob(f"*/{PERSONA_FILE}")):
        persona = load_persona_file(path)
        if persona.name in found:
            raise PersonaError(f"{path}: persona {persona.name!r} is defined twice")
        found[persona.name] = persona
    return MappingProxyType(found)
