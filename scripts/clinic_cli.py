"""``scripts/clinic``: add, update, show, list and remove clinics.

    scripts/clinic add FILE.yaml       a new clinic (its numbers must be free)
    scripts/clinic update FILE.yaml    change a clinic; its numbers become the file's
    scripts/clinic show ID             the clinic's configuration, as YAML
    scripts/clinic list                every clinic: id, name, numbers, time zone
    scripts/clinic remove ID           refused while the clinic has calls in progress
    scripts/clinic check FILE.yaml     only validate the file

The store is the one the settings name (``REDDYTALK_PROFILE``; the embedded profile's
SQLite file under ``REDDYTALK_DATA_DIR`` by default, the one the local stack uses).
The format is :mod:`reddytalk.clinics.config`; ``clinics/example.yaml`` shows every
field. Exit status: 0 done, 1 refused or invalid (the reason on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from reddytalk.clinics import admin
from reddytalk.clinics.config import ClinicConfigError, clinic_to_yaml, parse_clinic_yaml
from reddytalk.errors import ClinicBusy, ProviderError
from reddytalk.records import open_records
from reddytalk.scheduling.model import Clinic
from reddytalk.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential


def parser() -> argparse.ArgumentParser:
    """The command line."""
    return _parser()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/clinic", description="Add, update, show, list and remove clinics."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("add", "add a new clinic from its YAML file"),
        ("update", "change a clinic from its YAML file"),
        ("check", "validate a YAML file without saving it"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("file", type=Path)
    for name, help_text in (
        ("show", "print a clinic's configuration as YAML"),
        ("remove", "remove a clinic (refused while it has calls in progress)"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("clinic_id")
    commands.add_parser("list", help="list every clinic")
    return parser


def _read(path: Path) -> Clinic:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ClinicConfigError([("", f"cannot read {path}: {error.strerror}")]) from None
    return parse_clinic_yaml(text)


async def _run(
    args: argparse.Namespace, settings: Settings, *, credential: AsyncTokenCredential | None = None
) -> str:
    """One command's output; ``credential``: the Azure credential (default: Azure's
    DefaultAzureCredential, as ``az login`` or a managed identity provides)."""
    if args.command == "check":
        clinic = _read(args.file)
        return f"{args.file}: valid ({clinic.clinic_id}, {', '.join(clinic.phone_numbers)})"
    clinic = _read(args.file) if args.command in ("add", "update") else None
    records = await open_records(
        settings, with_ehr=settings.ehr == "embedded", credential=credential
    )
    try:
        store, now = records.store, dt.datetime.now(dt.UTC)
        ehr = admin.embedded_schedule(records.ehr)
        deployment = admin.DeploymentEhr.of(settings)
        if args.command == "add" and clinic is not None:
            await admin.add_clinic(store, clinic, ehr=ehr, deployment=deployment, now=now)
            return f"added {clinic.clinic_id}: calls to {', '.join(clinic.phone_numbers)} ring it"
        if args.command == "update" and clinic is not None:
            await admin.update_clinic(store, clinic, ehr=ehr, deployment=deployment, now=now)
            return f"updated {clinic.clinic_id}"
        if args.command == "show":
            found = await store.get_clinic(args.clinic_id)
            if found is None:
                raise admin.ClinicNotFound(f"no clinic {args.clinic_id!r}")
            return clinic_to_yaml(found).rstrip("\n")
        if args.command == "remove":
            await admin.remove_clinic(store, args.clinic_id)
            return f"removed {args.clinic_id}; its numbers are free, its records are kept"
        rows = [
            f"{c.clinic_id}\t{c.name}\t{' '.join(c.phone_numbers)}\t{c.time_zone}"
            for c in await store.list_clinics()
        ]
        return "\n".join(["id\tname\tnumbers\ttime zone", *rows])
    finally:
        await records.aclose()


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status."""
    args = _parser().parse_args(argv)
    try:
        print(asyncio.run(_run(args, Settings.from_env())))
    except ClinicConfigError as error:
        print(f"{getattr(args, 'file', '')}: not a valid clinic:\n{error}", file=sys.stderr)
        return 1
    except (admin.ClinicExists, admin.ClinicNotFound, ClinicBusy, ValueError) as error:
        print(f"refused: {error}", file=sys.stderr)
        return 1
    except ProviderError as error:
        print(f"the store failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
