"""The parameter files (bicep/parameters/*.bicepparam) fit main.bicep.

pycep-parser does not read .bicepparam files (no `using`, and `param name = value` has no
type), so this check is our own: the `using` target, each name against main.bicep's
parameters, the required ones present, literal values within @allowed/@minValue/@maxValue,
and the value expressions parsed by pycep-parser as `var` declarations. The cloud workflow
builds the files with `az bicep build-params`, which also type-checks the values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from bicep_model import BICEP, MAIN, ROOT, parse, parse_text

PARAMETER_FILES = sorted((BICEP / "parameters").glob("*.bicepparam"))
USING = re.compile(r"^using\s+'([^']+)'\s*$", re.MULTILINE)
PARAM = re.compile(r"^param\s+(\w+)\s*=", re.MULTILINE)
ENVIRONMENT_VARIABLE = re.compile(r"readEnvironmentVariable\('(\w+)'")


def check(path: Path, text: str) -> dict[str, Any]:
    """The file's values by name; raises AssertionError or a parse error if it does not fit."""
    using = USING.findall(text)
    assert len(using) == 1, f"{path.name}: one `using` line expected"
    assert (path.parent / using[0]).resolve() == MAIN.resolve(), f"{path.name} uses {using[0]}"
    names = PARAM.findall(text)
    assert len(names) == len(set(names)), f"{path.name} sets a parameter twice"
    as_bicep = PARAM.sub(lambda m: f"var {m.group(1)} =", USING.sub("", text))
    values = {name: v["value"] for name, v in parse_text(as_bicep)["variables"].items()}

    declared = parse(MAIN)["parameters"]
    unknown = set(values) - set(declared)
    assert not unknown, f"{path.name} sets {unknown}, which main.bicep does not declare"
    required = {name for name, p in declared.items() if p.get("default") is None}
    assert required <= set(values), f"{path.name} lacks {required - set(values)}"
    for name, value in values.items():
        decorators = {d["type"]: d.get("argument") for d in declared[name]["decorators"]}
        if "secure" in decorators:
            assert value == "" or isinstance(value, dict), (
                f"{path.name}: {name} is a literal secret"
            )
        if "allowed" in decorators and isinstance(value, str | int):
            assert value in decorators["allowed"], f"{path.name}: {name}={value!r} not allowed"
        if isinstance(value, int) and not isinstance(value, bool):
            assert value >= decorators.get("min_value", value), f"{path.name}: {name} too small"
            assert value <= decorators.get("max_value", value), f"{path.name}: {name} too large"
        if isinstance(value, list) and "max_length" in decorators:
            assert len(value) <= decorators["max_length"], f"{path.name}: {name} too long"
    return values


def test_there_is_a_parameters_file_for_dev_and_prod() -> None:
    assert {path.stem for path in PARAMETER_FILES} >= {"dev", "prod"}


@pytest.mark.parametrize("path", PARAMETER_FILES, ids=[p.name for p in PARAMETER_FILES])
def test_the_parameters_file_fits_main_bicep(path: Path) -> None:
    values = check(path, path.read_text())
    assert values["environmentName"] == path.stem


def test_production_is_private_and_redundant() -> None:
    path = BICEP / "parameters" / "prod.bicepparam"
    values = check(path, path.read_text())
    assert values["enablePrivateNetworking"] is True
    assert values["keyVaultSku"] == "premium"
    assert values["mediaWorkerMinReplicas"] >= 2
    assert values["functionsAlwaysReadyInstances"] >= 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("param logLevel = 'INFO'", "param logLevl = 'INFO'"), "does not declare"),
        (("param logLevel = 'INFO'", "param logLevel = 'LOUD'"), "not allowed"),
        (("param environmentName = 'dev'\n", ""), "lacks"),
        (("param logRetentionDays = 30", "param logRetentionDays = 3"), "too small"),
        (("param logLevel = 'INFO'", "param logLevel = 'INFO"), None),  # a syntax error
    ],
    ids=["unknown-name", "not-allowed", "required-missing", "below-minimum", "syntax"],
)
def test_a_wrong_parameters_file_is_rejected(change: tuple[str, str], message: str | None) -> None:
    path = BICEP / "parameters" / "dev.bicepparam"
    text = path.read_text()
    assert change[0] in text
    with pytest.raises(Exception, match=message):  # noqa: B017  # assertion or parse error
        check(path, text.replace(*change, 1))


def test_the_deploy_variables_are_the_ones_scripts_deploy_sets() -> None:
    script = (ROOT / "scripts" / "deploy").read_text()
    exported = set(re.findall(r"\b(DEPLOY_[A-Z_]+)=", script))
    for path in PARAMETER_FILES:
        assert set(ENVIRONMENT_VARIABLE.findall(path.read_text())) == exported, path.name
