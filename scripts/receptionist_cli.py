"""``scripts/demo`` and ``scripts/call``: run the receptionist, place scripted calls, report.

* ``scripts/demo [--serve] [--json] [--scenario FILE] [--direct]``: starts the local
  stack (embedded profile: the local ACS, the Functions app, the media worker; see
  ``local_stack.py``), places the demo call (or ``FILE``) through the local ACS's
  phone line and prints the conversation, the appointment and a latency table per
  turn; with ``--serve`` it keeps answering other callers until Ctrl-C. With
  ``--direct`` the caller talks to the media worker alone (no ACS, no Functions).
* ``scripts/call --scenario FILE [--json] [--url ws://HOST:PORT]``: calls a running
  receptionist, or starts one here if none answers at ``--url``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import uvicorn
from local_caller import CallReport, load_scenario, place_call, report_json

from media_worker.__main__ import server_config
from media_worker.app import create_app
from reddytalk.composition import open_embedded_records
from reddytalk.logs import configure_logging
from reddytalk.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEMO_SCENARIO = ROOT / "scenarios" / "book-existing-patient.yaml"
_STAGES = (
    ("turn_end_decided", "end of turn"),
    ("transcript_final", "transcript"),
    ("first_policy_text", "policy text"),
    ("first_tts_audio", "TTS audio"),
    ("first_frame_sent", "frame sent"),
)


def _is_listening(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.3):
        return True
    return False


@contextlib.asynccontextmanager
async def _receptionist(settings: Settings) -> Any:
    """Serve the media worker in this process; yield its ws:// URL."""
    config = server_config(create_app(settings), host=settings.host, port=settings.port)
    server = uvicorn.Server(config)  # served as production serves it
    task = asyncio.create_task(server.serve(), name="media-worker")
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the media worker did not start")
        await asyncio.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"ws://{settings.host}:{port}"
    finally:
        server.should_exit = True
        await task


async def _call_record(settings: Settings, report: CallReport) -> dict[str, Any]:
    """What the receptionist stored about the call, and the appointment it made."""
    records = open_embedded_records(settings)
    try:
        store, ehr = records.store, records.ehr
        for _ in range(40):  # the worker writes the record just after hanging up
            record = await store.get_call(report.call_id)
            if record is not None:
                break
            await asyncio.sleep(0.05)
        else:
            return {}
        clinic = await store.get_clinic(record.clinic_id)
        appointment = None
        for call in record.tool_calls:
            if call["name"] in ("book", "reschedule"):
                appointment = await ehr.get_appointment(call["result"]["appointment_id"])
        booked = None
        if appointment is not None and clinic is not None:
            local = appointment.start.astimezone(clinic.tz)
            booked = {
                "provider": clinic.provider(appointment.provider_id).display_name,
                "date": local.date().isoformat(),
                "time": local.strftime("%H:%M"),
                "appointment_type": appointment.appointment_type,
                "patient_id": appointment.patient_id,
                "appointment_id": appointment.appointment_id,
            }
        return {
            "outcome": record.outcome,
            "transcript": [list(line) for line in record.transcript],
            "tool_calls": list(record.tool_calls),
            "appointment": booked,
            "turn_timings": list(record.turn_timings),
        }
    finally:
        records.close()


def _result(report: CallReport, record: dict[str, Any]) -> dict[str, Any]:
    caller = report_json(report)
    turns = []
    for n, server in enumerate(record.get("turn_timings", []), 1):
        start = server.get("caller_speech_end_ms")
        stages = {
            key: None if start is None or server.get(f"{key}_ms") is None
            else round(server[f"{key}_ms"] - start, 1)
            for key, _ in _STAGES
        }  # fmt: skip
        heard = caller["turns"][n - 1] if n <= len(caller["turns"]) else {}
        turns.append({"turn": n, "stages_ms": stages,
                      "caller_voice_to_voice_ms": heard.get("voice_to_voice_ms")})  # fmt: skip
    return {
        "call_id": report.call_id,
        "scenario": report.scenario,
        "transcript": record.get("transcript", []),
        "outcome": record.get("outcome"),
        "appointment": record.get("appointment"),
        "greeting_first_sound_ms": report.greeting_first_sound_ms,
        "stop_audio_received": report.stop_audio_count,
        "turns": turns,
        "tool_calls": [c["name"] for c in record.get("tool_calls", [])],
    }


def _print_human(result: dict[str, Any]) -> None:
    print(f"\n== Call {result['scenario']} ({result['call_id']})\n")
    for speaker, text in result["transcript"]:
        print(f"  {speaker:>12}: {text or '(nothing recognized)'}")
    print(f"\n  outcome: {result['outcome']}")
    if appointment := result["appointment"]:
        print(
            f"  appointment: {appointment['appointment_type']} with {appointment['provider']} "
            f"on {appointment['date']} at {appointment['time']} (clinic time)"
        )
    print(f"  greeting: first sound {result['greeting_first_sound_ms']} ms after connect")
    print("\n  latency per turn, ms after the end of the caller's speech (server clock),")
    print("  and voice-to-voice as the caller measured it (its last voiced frame → first sound)")
    header = "  turn | " + " | ".join(f"{label:>11}" for _, label in _STAGES) + " | caller v2v"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for turn in result["turns"]:
        cells = " | ".join(f"{turn['stages_ms'][key] or '-':>11}" for key, _ in _STAGES)
        print(f"  {turn['turn']:>4} | {cells} | {turn['caller_voice_to_voice_ms'] or '-':>10}")
    print()


async def _run(args: argparse.Namespace, settings: Settings, command: str) -> int:
    scenarios = [load_scenario(path) for path in args.scenario or [DEMO_SCENARIO]]
    async with contextlib.AsyncExitStack() as stack:
        url = args.url
        admin: tuple[str, str] | None = None  # the local stack's admin API and its token
        host_port = url.removeprefix("ws://").rsplit(":", 1)
        if command == "demo" or not _is_listening(host_port[0], int(host_port[1])):
            if not args.serve:  # a private receptionist on a free port
                settings = dataclasses.replace(settings, port=0)
                if "REDDYTALK_DATA_DIR" not in os.environ:
                    # A fresh demo clinic each time, so every run books and cancels the
                    # same way (--serve keeps its store, in var/ by default).
                    scratch = stack.enter_context(
                        tempfile.TemporaryDirectory(prefix="reddytalk-demo-")
                    )
                    settings = dataclasses.replace(settings, data_dir=Path(scratch))
            if getattr(args, "direct", False) or command == "call":
                url = await stack.enter_async_context(_receptionist(settings))
            else:
                from local_stack import local_stack  # imports the Functions app

                local = await stack.enter_async_context(local_stack(settings))
                url = local.phone_url
                admin = (local.functions_url, local.admin_token)
        results = []
        for scenario in scenarios:
            wav = Path(args.wav_dir) / f"{scenario.name}.wav" if args.wav_dir else None
            report = await place_call(scenario, url=url, wav_path=wav)
            results.append(_result(report, await _call_record(settings, report)))
        if args.json:
            print(json.dumps(results[0] if len(results) == 1 else results))
        else:
            for result in results:
                _print_human(result)
        if args.serve:
            print(f"The receptionist is answering at {url}/calls/<call-id>?to=%2B15550100200 "
                  "(Ctrl-C to stop)", flush=True)  # fmt: skip
            if admin is not None:
                print(f"The admin console is at {admin[0]}/api/console and the admin API at "
                      f"{admin[0]}/api/manage/clinics; the admin token is {admin[1]} (kept "
                      f"in {settings.data_dir}/admin-token); its \"Call the receptionist\" "
                      "calls from this browser's microphone", flush=True)  # fmt: skip
            await asyncio.Event().wait()
    return 0


def main(argv: list[str] | None = None, *, command: str = "demo") -> int:
    """Entry point of ``scripts/demo`` and ``scripts/call``."""
    parser = argparse.ArgumentParser(prog=f"scripts/{command}", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, action="append", required=command == "call",
                        help="scenario file (YAML); repeat for several calls")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--url", default="ws://127.0.0.1:8765", help="a running receptionist")
    parser.add_argument("--wav-dir", help="write each call as a stereo WAV here")
    if command == "demo":
        parser.add_argument("--serve", action="store_true", help="keep answering calls")
        parser.add_argument("--direct", action="store_true",
                            help="call the media worker alone, without the local ACS and "
                                 "the Functions app")  # fmt: skip
    args = parser.parse_args(argv)
    args.serve = getattr(args, "serve", False)
    configure_logging("WARNING" if not args.serve else "INFO")
    settings = Settings.from_env()
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_run(args, settings, command))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[2:], command=sys.argv[1]))
