"""The Bicep and the code agree: settings, Cosmos containers, the IncomingCall function.

Each list is read from the code, not copied here, so a setting, container or function
added on one side fails these tests until the other side has it too.
"""

from __future__ import annotations

import ast
import contextlib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bicep_model import MAIN, MODULES, ROOT, body, parse, resources, walk

from reddytalk.settings import Settings

SETTINGS_SOURCE = ROOT / "reddytalk" / "settings.py"
SETTING = re.compile(r"REDDYTALK_[A-Z0-9_]*[A-Z0-9]")  # a name, not a prefix like REDDYTALK_SECRET_
PREFIX = re.compile(r"REDDYTALK_[A-Z0-9][A-Z0-9_]*_")  # a family of names: REDDYTALK_SECRET_<NAME>
APP_SETTINGS_FILES = (MODULES / "function-settings.bicep", MODULES / "media-worker.bicep")

# Settings the code reads that Azure deliberately does not set: the code's default is what
# Azure wants, or the setting only means something on a developer's machine. Everything else
# the code reads must be set in bicep/modules/function-settings.bicep (Functions app) or
# bicep/modules/media-worker.bicep (container app). An entry ending in "_" is a prefix: every
# name that starts with it.
NOT_SET_IN_AZURE = {
    # The embedded profile's SQLite directory; media_worker/Dockerfile points it at /app/var.
    "REDDYTALK_DATA_DIR",
    # The embedded profile's key-encryption key files; in Azure the KEK is the Key Vault key
    # (bicep/modules/keyvault.bicep), and a container's disk would lose the files anyway.
    "REDDYTALK_KEY_DIR",
    # Tests and the local ACS serve their own signing keys; Azure uses ACS's documented URL.
    "REDDYTALK_ACS_OPENID_CONFIG_URL",
    # The local ACS's self-signed CA; ACS in Azure has a publicly trusted certificate.
    "REDDYTALK_ACS_CA_FILE",
    # Tests serve their own signing keys; Azure uses the tenant's Entra ID configuration.
    "REDDYTALK_ADMIN_OPENID_CONFIG_URL",
    # The embedded profile's local admin token (scripts/local_stack.py); Azure takes Entra ID
    # tokens only.
    "REDDYTALK_ADMIN_TOKEN",
    # The local stack's phone line for the console's softphone; Azure has no phone line a
    # browser can dial (a real call goes through the PSTN), so the softphone is hidden there.
    "REDDYTALK_SOFTPHONE_LINE_URL",
    # The espeak-ng voice of the embedded text to speech.
    "REDDYTALK_VOICE",
    # Conversation tuning: the code's defaults are the tuned values; set them in Azure only
    # to experiment.
    "REDDYTALK_END_OF_TURN_MS",
    "REDDYTALK_SETTLED_END_OF_TURN_MS",
    "REDDYTALK_BARGE_IN_MS",
    # The cloud profile's defaults (cosmos, fhir) are what Azure runs; the media worker builds
    # no EHR, so it needs no REDDYTALK_EHR either.
    "REDDYTALK_STORE",
    "REDDYTALK_EHR",
    # A local Cosmos DB emulator's account key; Azure has keys disabled (managed identity).
    "REDDYTALK_COSMOS_KEY",
    # The local emulator's self-signed CA; Cosmos DB in Azure has a publicly trusted certificate.
    "REDDYTALK_COSMOS_CA_FILE",
    # A loopback Key Vault's CA (tests); Key Vault in Azure has a publicly trusted certificate.
    "REDDYTALK_KEY_VAULT_CA_FILE",
    # Bicep creates the database and containers (bicep/modules/cosmos.bicep); the identities
    # may not.
    "REDDYTALK_COSMOS_CREATE_CONTAINERS",
    # The ElevenLabs voice's tuning: the code's defaults are what Azure runs.
    "REDDYTALK_ELEVENLABS_MODEL_ID",
    "REDDYTALK_ELEVENLABS_BASE_URL",
    "REDDYTALK_TTS_FIRST_AUDIO_MS",
    # The embedded profile's secrets (REDDYTALK_SECRET_<NAME>); in Azure they are in Key Vault.
    "REDDYTALK_SECRET_",
    # The cloud profile's defaults are what Azure runs: Azure Speech (REDDYTALK_STT) and the
    # tiered policy (REDDYTALK_POLICY).
    "REDDYTALK_STT",
    "REDDYTALK_POLICY",
    # Keys of the Speech and Azure OpenAI resources: Bicep disables local auth on both and
    # grants the media worker's identity their user roles (bicep/modules/rbac.bicep).
    "REDDYTALK_AZURE_SPEECH_KEY_NAME",
    "REDDYTALK_AZURE_OPENAI_API_KEY_NAME",
    # With a key only; the managed identity needs the endpoint, which Bicep sets.
    "REDDYTALK_AZURE_SPEECH_REGION",
    # Voice and model tuning: the code's defaults are what Azure runs.
    "REDDYTALK_AZURE_TTS_VOICE",
    "REDDYTALK_SPEECH_SEGMENTATION_SILENCE_MS",
    "REDDYTALK_SPEECH_FINAL_WAIT_MS",
    "REDDYTALK_AZURE_OPENAI_API_VERSION",
    "REDDYTALK_LLM_FIRST_TOKEN_LATE_MS",
}


class _Recorder(Mapping[str, str]):
    """An empty environment that remembers every name asked of it, and whether it was
    listed (the code then reads names by a prefix)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.asked: set[str] = set()
        self.is_listed = False

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        return self.values[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.asked.add(name)
        return name in self.values

    def __iter__(self) -> Iterator[str]:
        self.is_listed = True
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def settings_the_code_reads() -> set[str]:
    """Every REDDYTALK_* name reddytalk/settings.py reads, and every prefix (ending in "_")
    it reads names by.

    Two readings: the names and prefixes written in settings.py (each branch, each profile),
    and the names Settings.from_env asks the environment for on each profile (names it
    builds). A from_env that lists the environment reads names by a prefix, which
    settings.py must then spell out.
    """
    tree = ast.parse(SETTINGS_SOURCE.read_text())
    constants = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    names = {value for value in constants if SETTING.fullmatch(value)}
    prefixes = {value for value in constants if PREFIX.fullmatch(value)}
    for profile in (None, "embedded", "cloud"):
        environment = _Recorder({} if profile is None else {"REDDYTALK_PROFILE": profile})
        with contextlib.suppress(ValueError):  # a profile may need more than an empty env
            Settings.from_env(environment)
        names |= {name for name in environment.asked if SETTING.fullmatch(name)}
        assert prefixes or not environment.is_listed, (
            "Settings.from_env lists the environment, but settings.py names no REDDYTALK_*_ prefix"
        )
    return names | prefixes


def _is_covered(name: str, entries: set[str]) -> bool:
    """Whether ``entries`` (names, and prefixes ending in "_") include ``name``."""
    return name in entries or any(
        entry.endswith("_") and name.startswith(entry) for entry in entries
    )


def app_settings_in_bicep(*paths: Path) -> dict[str, Any]:
    """REDDYTALK_* settings Bicep sets (Functions app settings, container env), by name: in
    ``paths``, or in both apps' files."""
    found: dict[str, Any] = {}
    for path in paths or APP_SETTINGS_FILES:
        for value in walk(parse(path)):
            if not isinstance(value, dict):
                continue
            for key, item in value.items():  # an app settings object: NAME: value
                if SETTING.fullmatch(key):
                    found[key] = item
            name = value.get("name")  # a container env entry: { name, value }
            if isinstance(name, str) and SETTING.fullmatch(name):
                found[name] = value.get("value", value.get("secretRef"))
    return found


def test_the_app_settings_in_bicep_are_exactly_the_settings_the_code_reads() -> None:
    code = settings_the_code_reads()
    bicep = set(app_settings_in_bicep())
    assert "REDDYTALK_PROFILE" in code, "reading settings.py found nothing"
    assert "REDDYTALK_SECRET_" in code, "reading settings.py found no prefix"
    # A prefix is never "set" as such: the code reads it, and Azure sets none of its names.
    missing = {n for n in code - bicep - NOT_SET_IN_AZURE if not n.endswith("_")}
    unprefixed = {n for n in code - NOT_SET_IN_AZURE if n.endswith("_")}
    unknown = {name for name in bicep if not _is_covered(name, code)}
    stale = NOT_SET_IN_AZURE - code
    both = {name for name in bicep if _is_covered(name, NOT_SET_IN_AZURE)}
    assert not missing, (
        f"reddytalk/settings.py reads {sorted(missing)}, which Azure does not set: set them "
        "in bicep/modules/function-settings.bicep or media-worker.bicep, or add them to "
        "NOT_SET_IN_AZURE here with the reason"
    )
    assert not unprefixed, (
        f"reddytalk/settings.py reads every name starting with {sorted(unprefixed)}: add the "
        "prefix to NOT_SET_IN_AZURE here with the reason"
    )
    assert not unknown, f"Bicep sets {sorted(unknown)}, which reddytalk/settings.py never reads"
    assert not stale, f"NOT_SET_IN_AZURE lists {sorted(stale)}, which the code no longer reads"
    assert not both, f"{sorted(both)} are both set in Bicep and listed as not set"


def test_secret_settings_are_key_vault_references() -> None:
    for name, value in app_settings_in_bicep().items():
        # A secret's name (REDDYTALK_FHIR_CLIENT_SECRET_NAME) or a token endpoint's address
        # (REDDYTALK_FHIR_TOKEN_URL) is not a secret.
        if name.endswith(("_NAME", "_URL")):
            continue
        if re.search(r"SECRET|CONNECTION_STRING|PASSWORD|_KEY$|TOKEN", name):
            assert isinstance(value, str) and value.startswith("@Microsoft.KeyVault(SecretUri="), (
                f"{name} must be a Key Vault reference, not {value!r}"
            )


def _accessor(owner: Any, member: Any, kind: str = "property_accessor") -> dict[str, Any]:
    """How pycep-parser spells ``owner.member`` (``owner::member`` for a nested resource)."""
    return {"operator": {"type": kind, "operands": {"operand_1": owner, "operand_2": member}}}


def _output(module: str, name: str) -> dict[str, Any]:
    """``<module>.outputs.<name>`` in main.bicep."""
    return _accessor(module, _accessor("outputs", name))


def _grants(principal: str) -> set[tuple[str, str]]:
    """(scope, role) of each role assignment rbac.bicep gives ``principal``, as text."""
    found = set()
    for r in resources(MODULES / "rbac.bicep"):
        properties = r.body["properties"]
        if r.type == "Microsoft.Authorization/roleAssignments":
            if properties["principalId"] == principal:
                role = properties["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
                found.add((str(r.body["scope"]), str(role)))
    return found


def test_each_app_reaches_the_store_and_the_kek_with_its_own_identity() -> None:
    modules = parse(MAIN)["modules"]
    apps = {
        "functionSettings": (MODULES / "function-settings.bicep", "functions"),
        "mediaWorker": (MODULES / "media-worker.bicep", "mediaWorker"),
    }
    for module, (path, identity) in apps.items():
        params = body(modules[module]["config"])["params"]
        assert params["cosmosEndpoint"] == _output("cosmos", "endpoint"), module
        assert params["cosmosDatabaseName"] == _output("cosmos", "databaseName"), module
        assert params["kekId"] == _output("keyVault", "kekUri"), module
        assert params["identityClientId"] == _output("identities", f"{identity}ClientId"), module
        settings = app_settings_in_bicep(path)
        assert settings["REDDYTALK_COSMOS_ENDPOINT"] == "cosmosEndpoint", path.name
        assert settings["REDDYTALK_COSMOS_DATABASE"] == "cosmosDatabaseName", path.name
        assert settings["REDDYTALK_KEK_ID"] == "kekId", path.name
        assert settings["REDDYTALK_MANAGED_IDENTITY_CLIENT_ID"] == "identityClientId", path.name
        # The cloud default (fhir) for the Functions app; the media worker builds no EHR, and
        # REDDYTALK_EHR=embedded would open a local SQLite one.
        assert "REDDYTALK_EHR" not in settings, path.name

    # Versionless (keyUri, not keyUriWithVersion): the apps wrap with the current version, so a
    # rotation needs no new setting.
    kek_id = parse(MODULES / "keyvault.bicep")["outputs"]["kekUri"]["value"]
    assert kek_id == _accessor("kek", _accessor("properties", "keyUri"))

    kek = str(_accessor("vault", "kek", kind="nested_resource_accessor"))
    crypto = str(_accessor("roles", "keyVaultCryptoServiceEncryptionUser"))
    secrets = str(_accessor("roles", "keyVaultSecretsUser"))
    assert (kek, crypto) in _grants("functionsPrincipalId")
    assert ("vault", secrets) in _grants("functionsPrincipalId")  # the EHR client secret
    assert (kek, crypto) in _grants("mediaWorkerPrincipalId")
    assert ("vault", secrets) in _grants("mediaWorkerPrincipalId")  # the ElevenLabs API key


def test_the_media_worker_speaks_with_elevenlabs_only_when_given_a_voice_else_azure() -> None:
    main = parse(MAIN)
    voice = main["parameters"]["elevenLabsVoiceId"]
    assert voice["default"] == "", "the default voice is Azure Neural"
    assert any(d["type"] == "description" for d in voice["decorators"])
    params = body(main["modules"]["mediaWorker"]["config"])["params"]
    assert params["elevenLabsVoiceId"] == "elevenLabsVoiceId"
    assert params["keyVaultUri"] == _output("keyVault", "uri")
    key_name = main["variables"][params["elevenLabsApiKeyVaultItem"]]["value"]
    assert key_name == Settings.from_env({}).elevenlabs_api_key_name

    settings = app_settings_in_bicep(MODULES / "media-worker.bicep")
    assert settings["REDDYTALK_ELEVENLABS_VOICE_ID"] == "elevenLabsVoiceId"
    assert settings["REDDYTALK_KEY_VAULT_URL"] == "keyVaultUri"
    assert settings["REDDYTALK_ELEVENLABS_API_KEY_NAME"] == "elevenLabsApiKeyVaultItem"
    # empty(elevenLabsVoiceId) ? 'azure' : 'elevenlabs'
    no_voice = {"function": {"type": "empty", "parameters": {"item_to_test": "elevenLabsVoiceId"}}}
    assert settings["REDDYTALK_TTS"] == {
        "operator": {
            "type": "conditional",
            "operands": {
                "condition": no_voice,
                "true_value": "azure",
                "false_value": "elevenlabs",
            },
        }
    }


def test_the_cloud_profile_is_what_azure_runs() -> None:
    settings = app_settings_in_bicep()
    assert settings["REDDYTALK_PROFILE"] == "cloud"
    assert settings["REDDYTALK_HOST"] == "0.0.0.0"  # the container listens beyond loopback


def test_the_cosmos_containers_are_the_store_s_both_ways() -> None:
    from reddytalk.providers.store.cosmos import CONTAINERS

    def key_and_ttl(spec: Any) -> tuple[str, int | None]:
        return (getattr(spec, "partition_key", spec), getattr(spec, "default_ttl_s", None))

    code = {name: key_and_ttl(spec) for name, spec in CONTAINERS.items()}
    path = MODULES / "cosmos.bicep"
    declared = parse(path)["variables"]["containers"]["value"]
    bicep = {c["name"]: (c["partitionKey"], c.get("defaultTtl")) for c in declared}
    assert bicep == code, f"bicep/modules/cosmos.bicep {bicep} != CONTAINERS {code}"

    (containers,) = [r for r in resources(path) if r.symbol == "sqlContainers"]
    assert containers.config["loop_type"]["detail"]["array_name"] == "containers"
    rbac = parse(MODULES / "rbac.bicep")["variables"]
    readable = rbac["mediaWorkerContainers"]["value"]
    assert set(readable) <= set(code), "the media worker reads a container that does not exist"
    # It writes only the calls in progress it holds (Receptionist.take_call), nothing with PHI.
    assert rbac["mediaWorkerWritableContainers"]["value"] == ["live_calls"]


def _event_grid_functions() -> set[str]:
    """Names of the functions in functions/ that an Event Grid trigger runs."""
    names = set()
    for path in (ROOT / "functions").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            calls = [d for d in node.decorator_list if isinstance(d, ast.Call)]
            attrs = {c.func.attr: c for c in calls if isinstance(c.func, ast.Attribute)}
            named = attrs.get("function_name")
            if "event_grid_trigger" in attrs and named is not None and named.args:
                argument = named.args[0]
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    names.add(argument.value)
    return names


def test_the_incoming_call_subscription_delivers_while_the_phone_rings() -> None:
    path = MODULES / "eventgrid.bicep"
    (subscription,) = [
        r
        for r in resources(path)
        if r.type == "Microsoft.EventGrid/systemTopics/eventSubscriptions"
    ]
    assert subscription.condition == "createSubscription", "the subscription is not gated"
    settings = subscription.body["properties"]
    assert settings["retryPolicy"] == {"maxDeliveryAttempts": 2, "eventTimeToLiveInMinutes": 1}
    assert settings["filter"]["includedEventTypes"] == ["Microsoft.Communication.IncomingCall"]
    (clinic_numbers,) = settings["filter"]["advancedFilters"]
    assert clinic_numbers == {
        "operatorType": "StringIn",
        "key": "data.to.PhoneNumber.Value",
        "values": "clinicPhoneNumbers",
    }
    dead_letter = settings["deadLetterWithResourceIdentity"]
    assert dead_letter["deadLetterDestination"]["endpointType"] == "StorageBlob"
    assert dead_letter["identity"]["type"] == "UserAssigned"
    destination = settings["destination"]
    assert destination["endpointType"] == "AzureFunction"
    assert destination["properties"]["maxEventsPerBatch"] == 1

    function = parse(path)["variables"]["incomingCallFunction"]["value"]
    assert function in _event_grid_functions(), f"functions/ has no Event Grid function {function}"
    handler = parse(path)["resources"]["functionApp__incomingCallHandler"]
    assert handler["type"] == "Microsoft.Web/sites/functions"
    assert handler["config"]["name"] == "incomingCallFunction"
    target = destination["properties"]["resourceId"]["operator"]["operands"]
    assert target["operand_2"]["operator"]["operands"]["operand_1"] == "incomingCallHandler"
    ready = {
        group["name"]
        for r in resources(MODULES / "functions.bicep")
        if r.type == "Microsoft.Web/sites"
        for group in r.body["properties"]["functionAppConfig"]["scaleAndConcurrency"]["alwaysReady"]
    }
    assert f"function:{function}" in ready

    gate = body(parse(MAIN)["modules"]["eventGrid"]["config"])["params"]["createSubscription"]
    assert "enableIncomingCallSubscription" in str(gate)
    max_numbers = [
        d["argument"]
        for d in parse(MAIN)["parameters"]["clinicPhoneNumbers"]["decorators"]
        if d["type"] == "max_length"
    ]
    assert max_numbers == [25], "StringIn takes at most 25 values"


def test_the_vault_items_are_the_ones_the_deploy_script_checks() -> None:
    items = parse(MAIN)["variables"]["vaultItems"]["value"]
    script = (ROOT / "scripts" / "deploy").read_text()
    for item in items.values():
        assert f" {item}" in script, f"scripts/deploy does not check the vault for {item}"


def test_the_media_worker_reaches_speech_and_openai_with_bicep_s_own_resources() -> None:
    params = body(parse(MAIN)["modules"]["mediaWorker"]["config"])["params"]
    assert params["speechEndpoint"] == _output("speech", "endpoint")
    assert params["openAiEndpoint"] == _output("openAi", "endpoint")
    assert params["openAiFastDeployment"] == _output("openAi", "fastDeploymentName")
    assert params["openAiComplexDeployment"] == _output("openAi", "complexDeploymentName")
    settings = app_settings_in_bicep(MODULES / "media-worker.bicep")
    assert settings["REDDYTALK_AZURE_SPEECH_ENDPOINT"] == "speechEndpoint"
    assert settings["REDDYTALK_AZURE_OPENAI_ENDPOINT"] == "openAiEndpoint"
    assert settings["REDDYTALK_AZURE_OPENAI_FAST_DEPLOYMENT"] == "openAiFastDeployment"
    assert settings["REDDYTALK_AZURE_OPENAI_COMPLEX_DEPLOYMENT"] == "openAiComplexDeployment"
    cloud = Settings.from_env({"REDDYTALK_PROFILE": "cloud"})
    assert (cloud.stt, cloud.policy) == ("azure", "tiered")  # what Azure runs, unset there
