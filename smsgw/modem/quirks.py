"""Per-model modem quirks, loaded from `hw_fixtures/<vendor>-<model>/quirks.toml` (data, not code).

A quirks file says how a model differs from what 3GPP TS 27.005/27.007 let a driver assume: which `+CNMI`
parameters to prefer, whether status reports arrive as `+CDS` (direct) or `+CDSI` (stored), whether `+CMT`/`+CDS`
must be acknowledged with `+CNMA`, which storages to use, extra initialisation commands and the vendor's
unsolicited lines. The driver matches a model by the answers to `AT+CGMI`/`AT+CGMM`; an unknown model gets
`GENERIC`, which assumes only the standards.
"""

from __future__ import annotations

import logging
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

log = logging.getLogger(__name__)

# The repository's fixtures; a config may point `quirks_dir` elsewhere.
DEFAULT_QUIRKS_DIR: Final = Path(__file__).resolve().parents[2] / "hw_fixtures"


class QuirksError(Exception):
    """A quirks.toml that cannot be used; the message names the file and key."""


@dataclass(frozen=True, slots=True)
class ModemQuirks:
    name: str  # directory name, e.g. "huawei-e173"
    vendor: str
    model: str
    manufacturer_pattern: str  # regular expression matched (case-insensitive) against the +CGMI answer
    model_pattern: str  # against the +CGMM answer
    # Preferred +CNMI=<mode>,<mt>,<bm>,<ds>,<bfr>; each value is checked against the AT+CNMI=? answer.
    # <ds> says how status reports come: 2 stored and announced with +CDSI (read, then deleted only after the
    # store has it, so a report that arrives while the gateway is down waits on the modem), 1 directly as +CDS
    # (lost if the gateway is down, unless the model runs +CSMS=1: see `needs_cnma`).
    cnmi: tuple[int, int, int, int, int] = (2, 1, 0, 2, 0)
    # For a model that cannot store status reports (<ds> 2): the driver sets +CSMS=1 and acknowledges each +CMT/+CDS
    # with AT+CNMA only after the store has it; one not acknowledged (the gateway was down) is refused to the
    # network, which delivers it again.
    needs_cnma: bool = False
    storages: tuple[str, ...] = ("ME", "SM", "MT")  # preferred +CPMS storage, first supported wins
    # Storages where a model may keep status reports apart from received messages (TS 27.005 "SR"); each one the
    # modem offers (AT+CPMS=?) is listed at start-up too, so reports stored while the gateway was down are read.
    report_storages: tuple[str, ...] = ("SR",)
    init_commands: tuple[str, ...] = ()
    unsolicited: tuple[str, ...] = ()  # extra unsolicited prefixes ("^RSSI:") or words ("Call Ready")
    two_line_unsolicited: tuple[str, ...] = ()  # unsolicited prefixes followed by a data line
    sim_busy_timeout_s: float = 20.0  # how long the SIM may answer +CME ERROR: 14 after power-on
    source: str = ""  # the public manual the values come from

    def matches(self, manufacturer: str, model: str) -> bool:
        return bool(
            re.search(self.manufacturer_pattern, manufacturer, re.IGNORECASE)
            and re.search(self.model_pattern, model, re.IGNORECASE)
        )

    def unsolicited_table(self) -> dict[str, int]:
        table = {prefix: 0 for prefix in self.unsolicited}
        table.update({prefix: 1 for prefix in self.two_line_unsolicited})
        return table


GENERIC: Final = ModemQuirks(
    name="generic", vendor="generic", model="generic", manufacturer_pattern="", model_pattern=""
)


def load_quirks_file(path: Path) -> ModemQuirks:
    try:
        with open(path, "rb") as file:
            raw: dict[str, Any] = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise QuirksError(f"{path}: {exc}") from exc
    values: dict[str, Any] = {"name": path.parent.name}
    for key, value in raw.items():
        if key not in _FIELD_TYPES:
            raise QuirksError(f"{path}: {key}: unknown key (known: {', '.join(_FIELD_TYPES)})")
        expected = _FIELD_TYPES[key]
        if expected is tuple:
            if not isinstance(value, list):
                raise QuirksError(f"{path}: {key}: must be a list")
            value = tuple(value)
        elif expected is float and isinstance(value, int):
            value = float(value)
        elif not isinstance(value, expected):
            raise QuirksError(f"{path}: {key}: must be {expected.__name__}")
        values[key] = value
    for required in ("vendor", "model", "manufacturer_pattern", "model_pattern"):
        if required not in values:
            raise QuirksError(f"{path}: {required}: required key is missing")
    cnmi = values.get("cnmi", GENERIC.cnmi)
    if len(cnmi) != 5 or not all(isinstance(v, int) for v in cnmi):
        raise QuirksError(f"{path}: cnmi: must be five integers <mode>,<mt>,<bm>,<ds>,<bfr>")
    return ModemQuirks(**values)


_FIELD_TYPES: Final[dict[str, type]] = {
    "vendor": str,
    "model": str,
    "manufacturer_pattern": str,
    "model_pattern": str,
    "cnmi": tuple,
    "needs_cnma": bool,
    "storages": tuple,
    "report_storages": tuple,
    "init_commands": tuple,
    "unsolicited": tuple,
    "two_line_unsolicited": tuple,
    "sim_busy_timeout_s": float,
    "source": str,
}


def load_quirks(directory: Path = DEFAULT_QUIRKS_DIR) -> tuple[ModemQuirks, ...]:
    """Every `*/quirks.toml` under `directory`, sorted by name; none when the directory does not exist."""
    if not directory.is_dir():
        log.warning("quirks directory missing path=%s; every modem is treated as generic", directory)
        return ()
    return tuple(load_quirks_file(path) for path in sorted(directory.glob("*/quirks.toml")))


def find_quirks(table: tuple[ModemQuirks, ...], manufacturer: str, model: str) -> ModemQuirks:
    for quirks in table:
        if quirks.matches(manufacturer, model):
            return quirks
    return GENERIC
