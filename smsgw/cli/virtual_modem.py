"""`smsgw virtual-modem`: one virtual GSM modem on a pty."""

from __future__ import annotations

import argparse
import functools
import logging
import signal
from typing import TYPE_CHECKING

from smsgw.cli.common import EXIT_OK, CliError

if TYPE_CHECKING:
    import trio

log = logging.getLogger(__name__)


def add_virtual_modem(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    modem = commands.add_parser(
        "virtual-modem",
        help="run one virtual GSM modem on a pty, for gammu, python-gsmmodem, Kannel or `smsgw serve`",
        description="Creates a pty that answers AT commands as a GSM modem on the virtual network of docs/virtual-network.md "
        "and symlinks its device at PATH. Runs until Ctrl-C.",
    )
    modem.add_argument("--link", required=True, metavar="PATH", help="where to symlink the pty device")
    modem.add_argument("--msisdn", default="447700900001", help="the modem's own number (default %(default)s)")
    modem.add_argument("--pin", default=None, help="SIM PIN the host must enter (default: no PIN)")
    modem.add_argument("--config", default=None, metavar="TOML", help="read the [virtual_network] section")
    modem.add_argument(
        "--persona",
        default="generic",
        help="answer like this firmware (generic, huawei, sim800): identification and vendor unsolicited lines",
    )
    modem.set_defaults(handler=_cmd_virtual_modem)


def _cmd_virtual_modem(args: argparse.Namespace) -> int:
    import trio

    from smsgw.config import ConfigError, VirtualNetworkConfig, load_config
    from smsgw.modem.virtual.persona import personas
    from smsgw.modem.virtual.pty import LinkError, run_standalone

    if args.persona not in personas():
        raise CliError(f"--persona {args.persona!r}: known personas are {', '.join(sorted(personas()))}")
    if not args.msisdn.isdigit() or not 5 <= len(args.msisdn) <= 15:
        raise CliError(f"--msisdn {args.msisdn!r}: give 5 to 15 digits, international form without '+'")
    try:
        config = load_config(args.config).virtual_network if args.config else VirtualNetworkConfig()
    except ConfigError as error:
        raise CliError(str(error)) from None

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            # SIGTERM (kill, a service manager) stops like Ctrl-C: cancelled, the pty's symlink is removed.
            nursery.start_soon(_cancel_on_sigterm, nursery.cancel_scope)
            standalone = functools.partial(run_standalone, pin=args.pin, persona=personas()[args.persona])
            path = await nursery.start(standalone, args.link, args.msisdn, config)
            print(f"virtual modem {args.msisdn} on {path} (Ctrl-C stops)", flush=True)

    # A shell starts a background job (`&`) with SIGINT ignored, and Trio then leaves it ignored: Ctrl-C and
    # `kill -INT` would do nothing. Asked to run until Ctrl-C, it must stop on it however it was started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    failure = None
    try:
        trio.run(run)
    except* LinkError as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        failure = str(leaf)
    except* KeyboardInterrupt:
        pass
    if failure is not None:
        raise CliError(failure)
    return EXIT_OK


async def _cancel_on_sigterm(scope: trio.CancelScope) -> None:
    import trio

    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async for _ in signals:
            log.info("SIGTERM received; stopping")
            scope.cancel()
            return
