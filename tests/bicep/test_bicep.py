"""The Bicep in bicep/ parses, and its security and availability posture holds.

What a parse tree can show is checked here; what needs the compiler (types, property
names, API versions, the linter) is checked by .github/workflows/bicep.yml in the cloud.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from bicep_model import (
    BICEP,
    MAIN,
    MODULES,
    Resource,
    bicep_files,
    body,
    description,
    parse,
    parse_text,
    resources,
    walk,
)

FILES = bicep_files()
FILE_IDS = [str(path.relative_to(BICEP)) for path in FILES]

# Extension resources: they take no tags (they are not tracked resources of their own).
UNTAGGED_TYPES = frozenset({
    "Microsoft.Authorization/roleAssignments",
    "Microsoft.Insights/diagnosticSettings",
})  # fmt: skip

# Resource types that take diagnostic settings, and therefore must have one here. Types
# deliberately left out: Microsoft.Insights/components (workspace-based: its telemetry is in
# Log Analytics already), Microsoft.App/containerApps (its logs flow through the
# environment's setting), Microsoft.Web/serverfarms (Flex Consumption plans: metrics only, on
# the app), and identities, private endpoints and DNS zones (none to send).
DIAGNOSABLE_TYPES = frozenset({
    "Microsoft.App/managedEnvironments",
    "Microsoft.CognitiveServices/accounts",
    "Microsoft.Communication/communicationServices",
    "Microsoft.ContainerRegistry/registries",
    "Microsoft.DocumentDB/databaseAccounts",
    "Microsoft.EventGrid/systemTopics",
    "Microsoft.KeyVault/vaults",
    "Microsoft.Network/networkSecurityGroups",
    "Microsoft.Network/virtualNetworks",
    "Microsoft.OperationalInsights/workspaces",
    "Microsoft.Storage/storageAccounts",
    "Microsoft.Storage/storageAccounts/blobServices",
    "Microsoft.Storage/storageAccounts/queueServices",
    "Microsoft.Storage/storageAccounts/tableServices",
    "Microsoft.Web/sites",
})  # fmt: skip

# Output names that announce a secret, and what an output value must never read.
SECRET_NAME = re.compile(
    r"secret|password|passwd|pwd|connectionstring|accesskey|apikey|primarykey|"
    r"secondarykey|masterkey|sas|token|instrumentationkey",
    re.IGNORECASE,
)
SECRET_PROPERTY = re.compile(
    r"^(primary|secondary)(master|readonlymaster)?(key|connectionstring)$|"
    r"^connectionstring$|^instrumentationkey$",
    re.IGNORECASE,
)

# Built-in roles too broad for any ReddyTalk identity.
BROAD_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": "Role Based Access Control Administrator",
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": "Key Vault Administrator",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "14b46e9e-c2b7-41b4-b07b-48a6ebf60603": "Key Vault Crypto Officer",
    "17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor",
    "25fbc0a9-bd7c-42a3-aa1a-3b75d497ee68": "Cognitive Services Contributor",
    "5ae67dd6-50cb-40e7-96ff-dc2bfa4b606b": "DocumentDB Account Contributor",
}


def all_resources(*, existing: bool = False) -> list[Resource]:
    return [r for path in FILES for r in resources(path, existing=existing)]


def of_type(type_: str) -> list[Resource]:
    found = [r for r in all_resources() if r.type == type_]
    assert found, f"no {type_} declared: the check below would be vacuous"
    return found


def prop(resource: Resource, dotted: str) -> Any:
    """``resource.body`` at a dotted path (``properties.siteConfig.minTlsVersion``)."""
    value: Any = resource.body
    for key in dotted.split("."):
        assert isinstance(value, dict) and key in value, f"{resource.symbol}: no {dotted}"
        value = value[key]
    return value


def is_conditional(value: Any, condition: str, when_true: Any) -> bool:
    """Whether ``value`` is ``condition ? when_true : …``."""
    if not isinstance(value, dict) or "operator" not in value:
        return False
    operator = value["operator"]
    operands = operator.get("operands", {})
    return (
        operator.get("type") == "conditional"
        and operands.get("condition") == condition
        and operands.get("true_value") == when_true
    )


def param_min_value(path: Path, name: str) -> int | None:
    for decorator in parse(path)["parameters"][name].get("decorators", []):
        if decorator.get("type") == "min_value":
            value = decorator.get("argument")
            return value if isinstance(value, int) else None
    return None


# --- the parser itself ---------------------------------------------------------------------


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_every_bicep_file_parses(path: Path) -> None:
    tree = parse(path)
    assert tree.get("resources") or tree.get("modules"), f"{path} declares nothing"


@pytest.mark.parametrize(
    "source",
    [
        "resource kv 'Microsoft.KeyVault/vaults@2023-07-01' = {\n  name: 'x'\n",  # no closing brace
        "param prefix string = 'unterminated\n",
        "output name = 'no type'\n",
        "resourc kv 'Microsoft.KeyVault/vaults@2023-07-01' = {\n  name: 'x'\n}\n",
        "resource kv 'Microsoft.KeyVault/vaults@2023-07-01' = {\n  name 'x'\n}\n",  # no colon
        "var text = '''\nunclosed multi-line string\n",
    ],
    ids=[
        "unclosed-object",
        "unterminated-string",
        "untyped-output",
        "typo",
        "no-colon",
        "multiline",
    ],
)
def test_a_broken_bicep_file_is_rejected(source: str) -> None:
    with pytest.raises(Exception):  # noqa: B017  # lark's errors, or pycep's ValueError
        parse_text(source)


def test_a_real_module_broken_in_one_place_is_rejected() -> None:
    text = (MODULES / "keyvault.bicep").read_text()
    broken = text.replace("    enablePurgeProtection: true\n", "    enablePurgeProtection: {\n", 1)
    assert broken != text
    parse_text(text)
    with pytest.raises(Exception):  # noqa: B017
        parse_text(broken)


# --- structure -----------------------------------------------------------------------------


def test_every_module_main_references_exists_gets_its_parameters_and_gives_its_outputs() -> None:
    main = parse(MAIN)
    source = MAIN.read_text()
    referenced = set()
    for symbol, module in main["modules"].items():
        path = (BICEP / module["detail"]["path"]).resolve()
        assert path.is_file(), f"module {symbol}: {path} does not exist"
        referenced.add(path)
        declared = parse(path).get("parameters", {})
        required = {name for name, p in declared.items() if p.get("default") is None}
        passed = set(body(module["config"]).get("params", {}))
        assert passed <= set(declared), f"{symbol} passes unknown {passed - set(declared)}"
        assert required <= passed, f"{symbol} lacks {required - passed}"
        outputs = set(parse(path).get("outputs", {}))
        used = set(re.findall(rf"\b{symbol}!?\.outputs\.(\w+)", source))
        assert used <= outputs, f"main.bicep reads {used - outputs} that {symbol} lacks"
    assert referenced == {path.resolve() for path in MODULES.glob("*.bicep")}, "orphan module"


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_every_parameter_and_output_has_a_description(path: Path) -> None:
    tree = parse(path)
    for kind in ("parameters", "outputs"):
        for name, declaration in tree.get(kind, {}).items():
            assert description(declaration), f"{path.name}: {kind[:-1]} {name} lacks @description"


def test_every_resource_is_tagged() -> None:
    for resource in all_resources():
        if resource.is_top_level and resource.type not in UNTAGGED_TYPES:
            assert resource.body.get("tags"), f"{resource.file.name}: {resource.symbol} is untagged"


def test_names_come_from_one_convention() -> None:
    """Every module gets its resource's name from main.bicep's `names` (no name invented
    in a module), and every name there is built from the abbreviations file."""
    main = parse(MAIN)
    names = main["variables"]["names"]["value"]
    assert all("${abbrs." in value for value in names.values()), names
    dns_named = UNTAGGED_TYPES | {"Microsoft.Network/privateDnsZones"}
    for path in MODULES.glob("*.bicep"):
        for resource in resources(path):
            if resource.is_top_level and resource.type not in dns_named:
                name = resource.body["name"]
                assert isinstance(name, str) and not name.startswith(("rtalk", "reddytalk")), (
                    f"{path.name}: {resource.symbol} has a literal name {name!r}"
                )


# --- secrets -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_no_output_carries_a_secret(path: Path) -> None:
    tree = parse(path)
    secure_params = {
        name
        for name, p in tree.get("parameters", {}).items()
        if any(d.get("type") == "secure" for d in p.get("decorators", []))
    }
    for name, output in tree.get("outputs", {}).items():
        assert not SECRET_NAME.search(name), f"{path.name}: output {name} is named like a secret"
        assert not any(d.get("type") == "secure" for d in output.get("decorators", []))
        for value in walk(output["value"]):
            if isinstance(value, dict) and "function" in value:
                function = str(value["function"].get("type", ""))
                assert not re.match(r"list|get_?secret", function, re.IGNORECASE), (
                    f"{path.name}: output {name} calls {function}"
                )
            if isinstance(value, dict) and value.get("operator", {}).get("type") in (
                "function_accessor",
            ):
                pytest.fail(f"{path.name}: output {name} calls a list*/getSecret function")
            if isinstance(value, str):
                assert value not in secure_params, f"{path.name}: output {name} reads {value}"
                assert not SECRET_PROPERTY.match(value), f"{path.name}: output {name} reads {value}"
    assert "listKeys" not in "".join(str(o) for o in tree.get("outputs", {}).values())


def test_secrets_are_only_written_from_secure_values() -> None:
    """Key Vault secrets take their value from a @secure() parameter or a list*() call."""
    for resource in of_type("Microsoft.KeyVault/vaults/secrets"):
        value = prop(resource, "properties.value")
        params = parse(resource.file)["parameters"]
        from_secure_param = isinstance(value, str) and any(
            d.get("type") == "secure" for d in params.get(value, {}).get("decorators", [])
        )
        from_list_call = "list" in str(value).lower()
        assert from_secure_param or from_list_call, f"{resource.symbol}: {value!r}"


# --- transport and authentication ----------------------------------------------------------


def test_https_only_and_tls_1_2_minimum() -> None:
    for account in of_type("Microsoft.Storage/storageAccounts"):
        assert prop(account, "properties.minimumTlsVersion") == "TLS1_2"
        assert prop(account, "properties.supportsHttpsTrafficOnly") is True
        assert prop(account, "properties.allowBlobPublicAccess") is False
    for site in of_type("Microsoft.Web/sites"):
        assert prop(site, "properties.httpsOnly") is True
        assert prop(site, "properties.siteConfig.minTlsVersion") == "1.2"
        assert prop(site, "properties.siteConfig.scmMinTlsVersion") == "1.2"
        assert prop(site, "properties.siteConfig.ftpsState") == "Disabled"
    for cosmos in of_type("Microsoft.DocumentDB/databaseAccounts"):
        assert prop(cosmos, "properties.minimalTlsVersion") == "Tls12"
    for app in of_type("Microsoft.App/containerApps"):
        assert prop(app, "properties.configuration.ingress.allowInsecure") is False


def test_local_authentication_is_off_where_the_service_allows() -> None:
    for account in of_type("Microsoft.Storage/storageAccounts"):
        assert prop(account, "properties.allowSharedKeyAccess") is False
    for cosmos in of_type("Microsoft.DocumentDB/databaseAccounts"):
        assert prop(cosmos, "properties.disableLocalAuth") is True
        assert prop(cosmos, "properties.disableKeyBasedMetadataWriteAccess") is True
    for account in of_type("Microsoft.CognitiveServices/accounts"):
        assert prop(account, "properties.disableLocalAuth") is True
        assert prop(account, "properties.customSubDomainName")
    for registry in of_type("Microsoft.ContainerRegistry/registries"):
        assert prop(registry, "properties.adminUserEnabled") is False
        assert prop(registry, "properties.anonymousPullEnabled") is False
    for component in of_type("Microsoft.Insights/components"):
        assert prop(component, "properties.DisableLocalAuth") is True
    for workspace in of_type("Microsoft.OperationalInsights/workspaces"):
        assert prop(workspace, "properties.features.disableLocalAuth") is True
    for site in of_type("Microsoft.Web/sites/basicPublishingCredentialsPolicies"):
        assert prop(site, "properties.allow") is False


def test_key_vault_uses_rbac_soft_delete_and_purge_protection() -> None:
    for vault in of_type("Microsoft.KeyVault/vaults"):
        assert prop(vault, "properties.enableRbacAuthorization") is True
        assert prop(vault, "properties.enableSoftDelete") is True
        assert prop(vault, "properties.enablePurgeProtection") is True
        assert "accessPolicies" not in prop(vault, "properties")
    (kek,) = of_type("Microsoft.KeyVault/vaults/keys")
    assert set(prop(kek, "properties.keyOps")) == {"wrapKey", "unwrapKey"}


def test_the_apps_run_as_managed_identities() -> None:
    (site,) = of_type("Microsoft.Web/sites")
    assert "Assigned" in prop(site, "identity.type")
    assert prop(site, "properties.keyVaultReferenceIdentity") == "identityId"
    deployment = prop(site, "properties.functionAppConfig.deployment.storage.authentication")
    assert deployment["type"] == "UserAssignedIdentity"
    (app,) = of_type("Microsoft.App/containerApps")
    assert "Assigned" in prop(app, "identity.type")
    for registry in prop(app, "properties.configuration.registries"):
        assert registry.get("identity") == "identityId" and "passwordSecretRef" not in registry
    assert not prop(app, "properties.configuration").get("secrets")


def test_role_assignments_are_deterministic_and_never_broad() -> None:
    for assignment in of_type("Microsoft.Authorization/roleAssignments"):
        assert prop(assignment, "name")["function"]["type"] == "guid"
        assert prop(assignment, "properties.principalType") == "ServicePrincipal"
        assert prop(assignment, "scope"), f"{assignment.symbol} is not scoped to one resource"
    for path in FILES:
        text = path.read_text().lower()
        for role_id, role in BROAD_ROLES.items():
            assert role_id not in text, f"{path.name} assigns {role}"


# --- availability --------------------------------------------------------------------------


def test_the_media_worker_is_always_warm_and_scales_on_concurrent_calls() -> None:
    path = MODULES / "media-worker.bicep"
    (app,) = of_type("Microsoft.App/containerApps")
    scale = prop(app, "properties.template.scale")
    assert (
        scale["minReplicas"] == "minReplicas" and (param_min_value(path, "minReplicas") or 0) >= 1
    )
    assert (param_min_value(MAIN, "mediaWorkerMinReplicas") or 0) >= 1
    (rule,) = scale["rules"]
    assert "concurrentRequests" in rule["http"]["metadata"]
    assert prop(app, "properties.configuration.ingress.stickySessions.affinity") == "none"
    (container,) = prop(app, "properties.template.containers")
    probes = {probe["type"]: probe for probe in container["probes"]}
    assert {"Liveness", "Readiness", "Startup"} <= set(probes)
    health = parse(path)["variables"]["healthProbe"]["value"]
    assert health["path"] == "/healthz"
    assert all(probe["httpGet"] == "healthProbe" for probe in probes.values())
    grace = parse(path)["variables"]["terminationGracePeriodSeconds"]["value"]
    assert prop(app, "properties.template.terminationGracePeriodSeconds") == (
        "terminationGracePeriodSeconds"
    )
    assert grace >= 300, "a call needs minutes to finish after SIGTERM"


def test_the_functions_app_keeps_instances_ready_for_http_and_incoming_call() -> None:
    (site,) = of_type("Microsoft.Web/sites")
    ready = prop(site, "properties.functionAppConfig.scaleAndConcurrency.alwaysReady")
    groups = {group["name"]: group["instanceCount"] for group in ready}
    assert {"http", "function:incoming_call"} <= set(groups)
    assert (param_min_value(MAIN, "functionsAlwaysReadyInstances") or 0) >= 1
    assert prop(site, "properties.functionAppConfig.runtime") == {
        "name": "python",
        "version": "3.11",
    }


# --- diagnostics and network ---------------------------------------------------------------


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_diagnostic_settings_on_every_resource_that_has_them(path: Path) -> None:
    settings = [r for r in resources(path) if r.type == "Microsoft.Insights/diagnosticSettings"]
    covered = {r.body.get("scope") for r in settings}
    for setting in settings:
        assert prop(setting, "properties.workspaceId"), f"{setting.symbol} has no workspace"
    for resource in resources(path):
        if resource.type in DIAGNOSABLE_TYPES:
            assert resource.symbol in covered, f"{path.name}: {resource.symbol} has no diagnostics"


def test_private_networking_turns_public_access_off_and_reaches_every_data_service() -> None:
    data_services = {
        "Microsoft.DocumentDB/databaseAccounts",
        "Microsoft.KeyVault/vaults",
        "Microsoft.CognitiveServices/accounts",
    }
    for resource in all_resources():
        if resource.type in data_services:
            access = prop(resource, "properties.publicNetworkAccess")
            assert is_conditional(access, "isPrivate", "Disabled"), resource.symbol
    (host,) = [r for r in of_type("Microsoft.Storage/storageAccounts") if r.symbol == "account"]
    assert is_conditional(prop(host, "properties.publicNetworkAccess"), "isPrivate", "Disabled")

    endpoints = parse(MAIN)["variables"]["privateEndpoints"]["value"]["operator"]["operands"]
    listed = {(e["name"], e["groupId"]) for e in endpoints["true_value"]}
    assert {group for _, group in listed} == {"Sql", "vault", "blob", "queue", "table", "account"}
    zones = parse(MODULES / "network.bicep")["variables"]["zoneNames"]["value"]
    assert {name for name, _ in listed} == set(zones), "an endpoint without its DNS zone"
    modules = parse(MAIN)["modules"]
    for symbol in ("functions", "mediaWorker"):
        subnet = body(modules[symbol]["config"])["params"]["subnetId"]
        assert subnet["operator"]["operands"]["condition"] == "enablePrivateNetworking"
