"""The README is the user's reference for status codes: every code smsgw can answer must be listed there."""

from pathlib import Path

from smsgw.pdu.constants import GatewayError

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_gateway_error_is_documented_with_its_status_and_err_code() -> None:
    for error in GatewayError:
        assert f"0x{error.command_status:08X}" in README, error
        assert f"err {error.value}" in README, error


def test_quick_start_is_two_commands() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = quick_start.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def test_every_document_the_readme_links_exists() -> None:
    """A link to a file outside the repository (DESIGN.md once) leaves a user with nothing to read."""
    import re

    root = Path(__file__).parent.parent
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+\.(?:md|toml))(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).is_file(), f"{page.name} links {target}"
    assert "DESIGN.md" not in README
