"""Personas are data in hw_fixtures/, checked against the driver's quirks.toml beside them."""

from __future__ import annotations

from pathlib import Path

import pytest

from smsgw.modem.quirks import find_quirks, load_quirks
from smsgw.modem.virtual.persona import PersonaError, load_persona_file, personas

FIXTURES = Path(__file__).resolve().parents[3] / "hw_fixtures"


def test_every_persona_is_recognised_by_the_driver_as_its_fixture() -> None:
    table = load_quirks()
    found = {name: find_quirks(table, p.manufacturer, p.model).name for name, p in personas().items()}
    assert found == {"generic": "generic", "huawei": "huawei-e173", "sim800": "simcom-sim800"}


def _fixture(tmp_path: Path, source: str, **changes: str) -> Path:
    directory = tmp_path / source
    directory.mkdir(parents=True)
    (directory / "quirks.toml").write_text((FIXTURES / source / "quirks.toml").read_text())
    text = (FIXTURES / source / "virtual.toml").read_text()
    for key, value in changes.items():
        text = "\n".join(f"{key} = {value}" if line.startswith(f"{key} =") else line for line in text.splitlines())
    path = directory / "virtual.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cnmi_test": '"(0-3),(0-3),(0,2),(0,1),(0,1)"'}, "does not allow the quirks' cnmi"),
        ({"model": '"K3765"'}, "not recognised by the quirks' patterns"),
        ({"periodic_lines": '["^NEW: 1"]'}, "not in the quirks' unsolicited list"),
        ({"lines_mid_command": '"yes"'}, "lines_mid_command: must be bool"),
    ],
)
def test_a_persona_that_disagrees_with_its_quirks_is_refused(
    tmp_path: Path, changes: dict[str, str], message: str
) -> None:
    assert load_persona_file(_fixture(tmp_path, "huawei-e173")).name == "huawei"
    with pytest.raises(PersonaError, match=message):
        load_persona_file(_fixture(tmp_path / "bad", "huawei-e173", **changes))
