"""The start-up script of a freshly opened modem: synchronise, identify (and so pick the model's quirks), unlock
the SIM, configure PDU mode, SMSC, storage and indications, then wait for the network.

It runs in three steps so the driver can act between them: `identify` (after it the IMSI is known, so the limit
counters can follow the SIM), `configure` (returns the storages the receive path reads), `register` (the modem
is REGISTERING meanwhile). A step fails with `StartupFailed`, whose kind tells the supervisor whether waiting can
cure it ("hung") or an operator must act ("fatal": a wrong PIN is never retried, three tries lock the SIM).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final, Literal

import trio

from smsgw.config import ModemConfig
from smsgw.modem.answers import creg_stat, digits, operator_name, parenthesised_lists, rssi, text_answer
from smsgw.modem.at import Response
from smsgw.modem.exchange import CommandExchange, CommandTimeout
from smsgw.modem.quirks import ModemQuirks, find_quirks
from smsgw.modem.status import ModemInfo
from smsgw.pdu.tpdu import dialled_type_of_address

log = logging.getLogger(__name__)

# +CME ERROR codes of start-up that no waiting will cure; an operator has to act.
_SIM_FATAL_CME: Final = frozenset({10, 12, 13, 15, 16, 18})
_CME_INCORRECT_PASSWORD: Final = 16
_REGISTERED: Final = frozenset({1, 5})  # +CREG <stat>: home network, roaming
_SIM_POLL_S: Final = 1.0
_REGISTRATION_POLL_S: Final = 2.0

SessionEndKind = Literal["gone", "hung", "fatal", "restarted", "error"]


class StartupFailed(Exception):
    def __init__(self, kind: SessionEndKind, reason: str) -> None:
        super().__init__(reason)
        self.kind: SessionEndKind = kind
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Storages:
    """Where messages and status reports wait in the modem (+CPMS)."""

    read: str | None  # selected for receiving and reading; None: could not be selected, the previous one stands
    reports: tuple[str, ...]  # the quirk's report storages this modem offers, apart from `read`


class StartUp:
    def __init__(
        self,
        name: str,
        config: ModemConfig,
        exchange: CommandExchange,
        info: ModemInfo,
        quirks_table: tuple[ModemQuirks, ...],
    ) -> None:
        self._name = name
        self._config = config
        self._exchange = exchange
        self._info = info
        self._quirks_table = quirks_table

    async def identify(self) -> None:
        """Answering, identified (`info` and the quirks filled in), SIM unlocked, IMSI read."""
        await self._sync()
        await self._exchange.command("AT+CMEE=1")  # numeric +CME ERROR codes; a modem without it still works
        await self._identify()
        await self._unlock_sim()
        imsi = await self._exchange.command("AT+CIMI")
        self._info.imsi = digits(imsi.lines)

    async def configure(self) -> Storages:
        quirks = self._info.quirks
        await self._require("AT+CMGF=0")
        for extra in quirks.init_commands:
            response = await self._exchange.command(extra)
            if not response.ok:
                log.warning("quirk init command failed modem=%s command=%s", self._name, extra)
        if self._config.smsc:
            await self._require(f'AT+CSCA="{self._config.smsc}",{dialled_type_of_address(self._config.smsc)}')
        storages = await self._choose_storage()
        await self._choose_indications()
        await self._exchange.command("AT+COPS=3,0")  # long alphanumeric operator names in +COPS?
        return storages

    async def register(self) -> None:
        await self._wait_registration()
        await poll_network(self._exchange, self._info)

    async def _require(self, command: str) -> Response:
        response = await self._exchange.command(command)
        if not response.ok:
            raise StartupFailed("fatal", f"{command} failed: {response.result.meaning}")
        return response

    async def _sync(self) -> None:
        """ESC, then ATE0 until the modem answers: it may still be booting, or left with echo on (which ATE0
        handles). A `> ` prompt left open by a crash (ours, or a previous process's between AT+CMGS and the PDU)
        takes every command as PDU input until Ctrl-Z; ESC ends it without sending, and a modem in command mode
        ignores it. The modem's answer to that ESC, if any, arrives before ATE0 is asked and passes as
        unsolicited."""
        await self._exchange.escape()
        for _attempt in range(3):
            try:
                response = await self._exchange.command("ATE0", self._config.watchdog_timeout_s)
            except CommandTimeout:
                self._exchange.timeouts_in_a_row = 0  # three tries here, not the watchdog's count
                continue
            if response.ok:
                self._exchange.timeouts_in_a_row = 0
                return
        raise StartupFailed("hung", "no answer to ATE0")

    async def _identify(self) -> None:
        info = self._info
        info.manufacturer = text_answer(await self._exchange.command("AT+CGMI"), "+CGMI:")
        info.model = text_answer(await self._exchange.command("AT+CGMM"), "+CGMM:")
        info.imei = digits((await self._exchange.command("AT+CGSN")).lines)
        info.quirks = find_quirks(self._quirks_table, info.manufacturer, info.model)
        self._exchange.add_unsolicited(info.quirks.unsolicited_table())
        log.debug(  # "modem ready" repeats all of it at INFO
            "modem identified modem=%s manufacturer=%s model=%s imei=%s quirks=%s",
            self._name,
            info.manufacturer,
            info.model,
            info.imei,
            info.quirks.name,
        )

    async def _unlock_sim(self) -> None:
        pin_sent = False
        give_up = trio.current_time() + max(self._config.sim_ready_timeout_s, self._info.quirks.sim_busy_timeout_s)
        while True:
            state, error = await self._sim_state()
            if state == "READY":
                return
            if state == "SIM PIN":
                if pin_sent:
                    raise StartupFailed("fatal", "SIM still asks for its PIN after the configured PIN: wrong PIN")
                if not self._config.pin:
                    raise StartupFailed("fatal", "SIM needs a PIN and none is configured")
                pin_sent = True
                await self._enter_pin(self._config.pin)
                continue
            if state is not None:
                raise StartupFailed("fatal", f"SIM needs {state}")
            if error is not None and error in _SIM_FATAL_CME:
                raise StartupFailed("fatal", f"SIM problem: +CME ERROR: {error}")
            if trio.current_time() >= give_up:
                raise StartupFailed("hung", f"SIM not ready after {self._config.sim_ready_timeout_s} s")
            await trio.sleep(_SIM_POLL_S)

    async def _sim_state(self) -> tuple[str | None, int | None]:
        """("READY" / "SIM PIN" / other +CPIN state, None) or (None, CME error) while the SIM is busy."""
        self._exchange.partial_answer = ()
        try:
            response = await self._exchange.command("AT+CPIN?")
        except CommandTimeout:
            # Some modems print "+CPIN: READY" and never the OK: the partial answer is enough.
            partial: tuple[str, ...] = self._exchange.partial_answer
            values = [line[len("+CPIN:") :].strip() for line in partial if line.startswith("+CPIN:")]
            self._exchange.timeouts_in_a_row = 0
            if values:
                return values[0], None
            return None, None
        if response.ok and response.values("+CPIN:"):
            return response.values("+CPIN:")[0], None
        return None, response.result.cme_error

    async def _enter_pin(self, pin: str) -> None:
        try:
            response = await self._exchange.command(f'AT+CPIN="{pin}"')
        except CommandTimeout:
            # The OK may never come; the next AT+CPIN? tells what happened. The PIN is not sent again.
            self._exchange.timeouts_in_a_row = 0
            return
        if not response.ok and response.result.cme_error in (_CME_INCORRECT_PASSWORD, 12):
            raise StartupFailed("fatal", f"PIN rejected ({response.result.meaning}); not retried")

    async def _choose_storage(self) -> Storages:
        quirks = self._info.quirks
        test = await self._exchange.command("AT+CPMS=?")
        lists = parenthesised_lists(test.values("+CPMS:")[0]) if test.ok and test.values("+CPMS:") else []
        receive_lists = [lists[0], lists[-1]] if lists else []
        storage = next(
            (s for s in quirks.storages if all(s in options for options in receive_lists)),
            quirks.storages[0],
        )
        response = await self._exchange.command(f'AT+CPMS="{storage}","{storage}","{storage}"')
        if not response.ok:
            response = await self._exchange.command(f'AT+CPMS="{storage}"')
        if not response.ok:
            log.warning("storage not selected modem=%s storage=%s", self._name, storage)
        offered = lists[0] if lists else []
        reports = tuple(s for s in quirks.report_storages if s in offered and s != storage)
        return Storages(storage if response.ok else None, reports)

    async def _choose_indications(self) -> None:
        quirks = self._info.quirks
        if quirks.needs_cnma:
            # Before +CNMI: phase 2+ makes the network wait for our AT+CNMA, sent only after the store has it.
            response = await self._exchange.command("AT+CSMS=1")
            if not response.ok:
                log.warning("AT+CSMS=1 refused modem=%s error=%s", self._name, response.result.meaning)
        test = await self._exchange.command("AT+CNMI=?")
        supported = parenthesised_lists(test.values("+CNMI:")[0]) if test.ok and test.values("+CNMI:") else []
        values = choose_cnmi(quirks.cnmi, [[int(v) for v in options if v.isdigit()] for options in supported])
        await self._require("AT+CNMI=" + ",".join(str(v) for v in values))

    async def _wait_registration(self) -> None:
        give_up = trio.current_time() + self._config.registration_timeout_s
        while True:
            response = await self._exchange.command("AT+CREG?")
            if response.ok and response.values("+CREG:"):
                self._info.registration = creg_stat(response.values("+CREG:")[0])
                if self._info.registration in _REGISTERED:
                    return
            if trio.current_time() >= give_up:
                raise StartupFailed("hung", f"not registered after {self._config.registration_timeout_s} s")
            await trio.sleep(_REGISTRATION_POLL_S)


async def poll_network(exchange: CommandExchange, info: ModemInfo) -> None:
    """Signal, registration and operator into `info`: once registered at start-up, then every poll interval."""
    csq = await exchange.command("AT+CSQ")
    if csq.ok and csq.values("+CSQ:"):
        info.signal_rssi = rssi(csq.values("+CSQ:")[0])
    creg = await exchange.command("AT+CREG?")
    if creg.ok and creg.values("+CREG:"):
        info.registration = creg_stat(creg.values("+CREG:")[0])
    cops = await exchange.command("AT+COPS?")
    if cops.ok and cops.values("+COPS:"):
        info.operator = operator_name(cops.values("+COPS:")[0])
    if info.registration is not None and info.registration not in _REGISTERED:
        log.warning("modem lost the network modem=%s creg=%s", exchange.name, info.registration)


def choose_cnmi(preferred: tuple[int, ...], supported: list[list[int]]) -> tuple[int, ...]:
    """+CNMI values: the quirk's preference where the modem supports it (AT+CNMI=? lists), else a fallback.

    mode 2 (buffer while the link is busy) before 1 and 3; mt 1 (store, +CMTI) before 2 (+CMT) and ds 2 (store,
    +CDSI) before 1 (+CDS), because a stored message or report survives our crash and waits on the modem until
    the store has it; a model that can only deliver reports directly is run with +CSMS=1 (quirk `needs_cnma`)."""
    fallbacks = ((2, 1, 3, 0), (1, 2, 3, 0), (0, 2), (2, 1, 0), (0, 1))
    if not supported:
        return tuple(preferred)
    chosen: list[int] = []
    for position, options in enumerate(supported[:5]):
        candidates = (preferred[position], *fallbacks[position])
        value = next((c for c in candidates if c in options), options[0] if options else preferred[position])
        chosen.append(value)
    return tuple(chosen)
