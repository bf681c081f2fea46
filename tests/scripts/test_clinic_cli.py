"""``scripts/clinic`` on the embedded store: add, update, show, list, remove, check."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from clinic_cli import _run, main, parser

from reddytalk.clinics.config import ClinicConfigError, clinic_to_yaml, parse_clinic_yaml
from reddytalk.composition import open_embedded_records
from reddytalk.records import open_records
from reddytalk.scheduling.model import Clinic, EhrConnection
from reddytalk.settings import Settings
from tests.contracts.ehr_fixtures import fhir_server_fixture  # noqa: F401
from tests.contracts.store_fixtures import CosmosServer, cosmos_server_fixture  # noqa: F401
from tests.servers.fhir.launch import FhirServer
from tests.servers.keyvault import TlsFiles, make_tls
from tests.test_records import _cloud

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "clinics" / "example.yaml"


def _local(clinic: Clinic) -> Clinic:
    """The example clinic on the embedded EHR (the local stack's)."""
    return dataclasses.replace(clinic, ehr=EhrConnection())


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REDDYTALK_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("REDDYTALK_PROFILE", raising=False)
    return tmp_path / "var"


@pytest.fixture
def clinic_file(tmp_path: Path) -> tuple[Path, Clinic]:
    clinic = _local(parse_clinic_yaml(EXAMPLE.read_text()))
    path = tmp_path / "maple.yaml"
    path.write_text(clinic_to_yaml(clinic))
    return path, clinic


def _stored(data_dir: Path) -> list[Clinic]:
    with open_embedded_records(Settings(data_dir=data_dir)) as records:
        return asyncio.run(records.store.list_clinics())


def test_check_validates_without_saving(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "valid (maple-grove-family-medicine, +15550100100, +15550100101)" in out
    assert not data_dir.exists()  # nothing opened


def test_a_bad_file_is_refused_naming_each_field_and_nothing_is_saved(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = EXAMPLE.read_text().replace('"+15550100101"', '"555-0101"')
    text = text.replace("time_zone: America/Denver", "time_zone: Mars/Olympus")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert main(["add", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "not a valid clinic" in err
    assert "phone_numbers[1]:" in err and "time_zone:" in err
    assert not data_dir.exists() or _stored(data_dir) == []


def test_add_list_show_and_the_schedule_opens(
    data_dir: Path, clinic_file: tuple[Path, Clinic], capsys: pytest.CaptureFixture[str]
) -> None:
    path, clinic = clinic_file
    assert main(["add", str(path)]) == 0
    assert "added maple-grove-family-medicine" in capsys.readouterr().out
    assert _stored(data_dir) == [clinic]

    assert main(["list"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[1].split("\t") == [
        clinic.clinic_id,
        clinic.name,
        "+15550100100 +15550100101",
        "America/Denver",
    ]
    assert main(["show", clinic.clinic_id]) == 0
    assert parse_clinic_yaml(capsys.readouterr().out) == clinic

    with open_embedded_records(Settings(data_dir=data_dir)) as records:
        store, ehr = records.store, records.ehr
        assert asyncio.run(store.find_clinic_by_number("+15550100101")) == clinic
        now = dt.datetime.now(dt.UTC)
        slots = asyncio.run(ehr.find_free_slots(clinic_id=clinic.clinic_id, start=now,
                                                end=now + dt.timedelta(days=8),
                                                provider_id=None))  # fmt: skip
    assert {s.provider_id for s in slots} == {p.provider_id for p in clinic.providers}
    for slot in slots:  # inside the clinic's hours, in its time zone, never on a holiday
        local = slot.start.astimezone(clinic.tz)
        hours = clinic.hours_on(local.date())
        assert hours is not None and hours.opens <= local.time()
        assert slot.end.astimezone(clinic.tz).time() <= hours.closes


def test_add_twice_or_with_another_clinics_number_is_refused(
    data_dir: Path, clinic_file: tuple[Path, Clinic], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    path, clinic = clinic_file
    assert main(["add", str(path)]) == 0
    assert main(["add", str(path)]) == 1
    assert "exists already: use update" in capsys.readouterr().err

    other = dataclasses.replace(clinic, clinic_id="other-clinic", name="Other Clinic",
                                phone_number="+15550100150",
                                other_phone_numbers=("+15550100101",))  # fmt: skip
    other_path = tmp_path / "other.yaml"
    other_path.write_text(clinic_to_yaml(other))
    assert main(["add", str(other_path)]) == 1
    assert "+15550100101" in capsys.readouterr().err
    assert [c.clinic_id for c in _stored(data_dir)] == [clinic.clinic_id]


def test_update_changes_the_clinic_and_frees_the_numbers_it_no_longer_lists(
    data_dir: Path, clinic_file: tuple[Path, Clinic], tmp_path: Path
) -> None:
    path, clinic = clinic_file
    assert main(["update", str(path)]) == 1  # not added yet
    assert main(["add", str(path)]) == 0
    changed = dataclasses.replace(clinic, other_phone_numbers=(), greeting="Maple Grove, hello.")
    path.write_text(clinic_to_yaml(changed))
    assert main(["update", str(path)]) == 0
    assert _stored(data_dir) == [changed]
    with open_embedded_records(Settings(data_dir=data_dir)) as records:
        assert asyncio.run(records.store.find_clinic_by_number("+15550100101")) is None


def test_remove_is_refused_while_a_call_is_in_progress(
    data_dir: Path, clinic_file: tuple[Path, Clinic], capsys: pytest.CaptureFixture[str]
) -> None:
    path, clinic = clinic_file
    assert main(["add", str(path)]) == 0
    now = dt.datetime.now(dt.UTC)
    with open_embedded_records(Settings(data_dir=data_dir)) as records:
        asyncio.run(records.store.call_started("call-1", clinic.clinic_id, at=now))
    assert main(["remove", clinic.clinic_id]) == 1
    assert "in progress" in capsys.readouterr().err
    assert _stored(data_dir) == [clinic]

    with open_embedded_records(Settings(data_dir=data_dir)) as records:
        asyncio.run(records.store.call_ended("call-1"))
    assert main(["remove", clinic.clinic_id]) == 0
    assert _stored(data_dir) == []
    assert main(["remove", clinic.clinic_id]) == 1
    assert "no clinic" in capsys.readouterr().err


def test_the_command_reads_files_relative_to_where_it_is_run(
    tmp_path: Path, clinic_file: tuple[Path, Clinic]
) -> None:
    path, clinic = clinic_file
    env = {"PATH": "/usr/bin:/bin", "REDDYTALK_DATA_DIR": str(tmp_path / "var")}
    done = subprocess.run([str(ROOT / "scripts" / "clinic"), "add", path.name], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _stored(tmp_path / "var") == [clinic]
    assert sys.executable  # the script runs the project's own .venv, not this one


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


def test_on_the_cloud_profile_the_clinic_goes_to_cosmos_db(
    cosmos_server: CosmosServer, fhir_server: FhirServer, tls: TlsFiles, tmp_path: Path
) -> None:
    """The same command against the deployment's store: Cosmos DB (loopback, real SDK)
    with the key-encryption key in Key Vault (loopback), and the clinic's own FHIR EHR.
    A clinic on the embedded schedule is refused there (Azure keeps none), changing
    nothing."""
    clinic = parse_clinic_yaml(EXAMPLE.read_text())  # ehr: fhir, its own server
    local = tmp_path / "local.yaml"
    local.write_text(clinic_to_yaml(_local(clinic)))

    async def scenario() -> tuple[list[str], Clinic | None]:
        async with _cloud(cosmos_server, fhir_server, tls, tmp_path) as cloud:
            settings = Settings.from_env(cloud.env)
            with pytest.raises(ClinicConfigError) as refused:
                await _run(parser().parse_args(["add", str(local)]), settings,
                           credential=cloud.credential)  # fmt: skip
            assert [field for field, _ in refused.value.problems] == ["ehr.kind"]
            outputs = []
            for argv in (["list"], ["add", str(EXAMPLE)], ["list"], ["show", clinic.clinic_id]):
                args = parser().parse_args(argv)
                outputs.append(await _run(args, settings, credential=cloud.credential))
            records = await open_records(settings, with_ehr=False, credential=cloud.credential)
            try:
                found = await records.store.find_clinic_by_number("+15550100101")
            finally:
                await records.aclose()
            return outputs, found

    (before, added, listed, shown), found = asyncio.run(scenario())
    assert "maple-grove" not in before  # the refused file saved nothing
    assert added.startswith("added maple-grove-family-medicine")
    assert listed.splitlines()[1].startswith("maple-grove-family-medicine\tMaple Grove")
    assert parse_clinic_yaml(shown) == clinic == found


def test_a_clinic_on_its_own_fhir_server_is_added_on_the_embedded_profile_too(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["add", str(EXAMPLE)]) == 0  # ehr: fhir: its calls go to its server
    assert "added maple-grove-family-medicine" in capsys.readouterr().out
    [stored] = [c for c in _stored(data_dir) if c.clinic_id == "maple-grove-family-medicine"]
    assert stored.ehr.kind == "fhir"
