"""The deployment recipes agree with the image and with the code.

The Dockerfile is the source of truth for ports, the spool path, the user and the health check; the
settings modules are the source of truth for environment variable names and defaults. Compose, Kubernetes,
the Collector gateway and docs/deploy.md are checked against both, so none of them can drift.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from compose_spec import PyCompose

from maxim_otel_bridge import config
from maxim_otel_bridge.cli import build_parser
from maxim_otel_bridge.sidecar.admin import AdminServer
from maxim_otel_bridge.sidecar.settings import SETTINGS, SidecarSettings, load_settings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "config" / "docker-compose.yaml"
K8S_SIDECAR = ROOT / "config" / "kubernetes" / "sidecar.yaml"
K8S_GATEWAY = ROOT / "config" / "kubernetes" / "gateway.yaml"
COLLECTOR = ROOT / "config" / "otel-collector-gateway.yaml"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
SMOKE = ROOT / "scripts" / "container-smoke.sh"

BRIDGE_IMAGE_NAME = "maxim-otel-bridge"
# Native sidecars (init containers with restartPolicy: Always) need 1.29; docs/deploy.md says so.
KUBERNETES_VERSION = "1.29.0"

# The sidecar's settings table is the one source of environment variable names and library defaults.
SETTING_ENV = {setting.name: setting.env for setting in SETTINGS}
ENV_GRPC = SETTING_ENV["grpc_endpoint"]
ENV_HTTP = SETTING_ENV["http_endpoint"]
ENV_ADMIN = SETTING_ENV["admin_endpoint"]
ENV_SPOOL = SETTING_ENV["spool_dir"]
ENV_SPOOL_MAX = SETTING_ENV["spool_max_bytes"]
LIBRARY_DEFAULT_PORTS = {
    setting.env: int(setting.default.rpartition(":")[2])
    for setting in SETTINGS
    if setting.name in ("grpc_endpoint", "http_endpoint", "admin_endpoint")
}
SETUP = ROOT / "setup.py"
COMPILE_VARIABLE = "MAXIM_BRIDGE_COMPILE"
"""The build-time variable asking setup.py for the compiled build (not a setting of the running bridge)."""
KNOWN_ENV = {config.ENV_API_KEY, config.ENV_REPO_ID, config.ENV_BASE_URL} | set(SETTING_ENV.values())
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"


# ---- reading the Dockerfile ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Instructions in order, with `\\` continuations joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a line continuation"
    return instructions


@dataclass(frozen=True)
class Image:
    """What the final stage of the Dockerfile declares."""

    stages: list[list[Instruction]]
    env: dict[str, str]
    exposed: set[int]
    volumes: list[str]
    user: str
    entrypoint: list[str]
    cmd: list[str]
    healthcheck: str

    @property
    def final(self) -> list[Instruction]:
        return self.stages[-1]

    def port(self, env_name: str) -> int:
        return int(self.env[env_name].rpartition(":")[2])


def parse_image(text: str) -> Image:
    stages: list[list[Instruction]] = []
    for instruction in dockerfile_instructions(text):
        if instruction.keyword == "FROM":
            stages.append([])
        assert stages, f"{instruction.keyword} before the first FROM"
        stages[-1].append(instruction)
    final = stages[-1]

    def only(keyword: str) -> str:
        found = [i.args for i in final if i.keyword == keyword]
        assert len(found) == 1, f"the final stage must have exactly one {keyword}, has {len(found)}"
        return found[0]

    env: dict[str, str] = {}
    for instruction in final:
        if instruction.keyword == "ENV":
            for pair in shlex.split(instruction.args):
                name, sep, value = pair.partition("=")
                assert sep, f"use ENV name=value, not the legacy form: {instruction.args}"
                env[name] = value
    exposed = {int(port.split("/")[0]) for i in final if i.keyword == "EXPOSE" for port in i.args.split()}
    volumes = [v for i in final if i.keyword == "VOLUME" for v in json.loads(i.args)]
    return Image(
        stages=stages,
        env=env,
        exposed=exposed,
        volumes=volumes,
        user=only("USER"),
        entrypoint=json.loads(only("ENTRYPOINT")),
        cmd=json.loads(only("CMD")),
        healthcheck=only("HEALTHCHECK"),
    )


@pytest.fixture(scope="module")
def image() -> Image:
    return parse_image(DOCKERFILE.read_text())


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def port_of(endpoint: str) -> int:
    return int(endpoint.rpartition(":")[2])


def host_of(endpoint: str) -> str:
    return endpoint.rpartition(":")[0]


def run_tool(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout)


def venv_tool(name: str) -> str:
    """A linter installed by the test extras (next to this interpreter), else one on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is missing: install the test extras (pip install -e '.[test]')"
    return found


def effective_settings(image: Image, overrides: dict[str, str]) -> SidecarSettings:
    """What `serve` would run with: the image's environment plus a recipe's own values, read by the sidecar."""
    return load_settings({}, environ={**image.env, **overrides})


_QUANTITY = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes binary quantity (`512Mi`, `5Gi`) in bytes."""
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)", quantity)
    assert match, f"use a binary quantity such as 1Gi, got {quantity!r}"
    return int(match.group(1)) * _QUANTITY[match.group(2)]


def served_status(path: str) -> int:
    """The status the sidecar's real admin server answers for `path` (a ready sidecar)."""
    admin = AdminServer("127.0.0.1:0", readiness=lambda: (True, {}), render_metrics=lambda: (b"", "text/plain"))
    admin.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin.bound_port}{path}", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    finally:
        admin.stop()


# ---- the image -----------------------------------------------------------------------------------------


def test_dockerfile_builds_a_wheel_then_installs_it_into_a_clean_runtime_stage(image: Image) -> None:
    assert len(image.stages) >= 2, "multi-stage: a build stage and a runtime stage"
    bases = {stage[0].args.split()[0] for stage in image.stages}
    assert len(bases) == 1, f"one base image for every stage (the installed venv must match it): {bases}"
    build_runs = " ".join(i.args for i in image.stages[0] if i.keyword == "RUN")
    assert "pip wheel" in build_runs
    # The image ships the compiled build: the wheel is built with the variable setup.py reads.
    assert f"{COMPILE_VARIABLE}=1 " in build_runs
    assert f'COMPILE_VARIABLE = "{COMPILE_VARIABLE}"' in SETUP.read_text()
    final_runs = " ".join(i.args for i in image.final if i.keyword == "RUN")
    assert "from=build" in final_runs and "--no-index" in final_runs, "the runtime installs only the built wheels"
    assert not any(i.keyword == "COPY" and "src" in i.args.split() for i in image.final), "no sources at runtime"
    # The container smoke test builds the base with debootstrap: the tag has to name the Debian release.
    (base,) = bases
    assert re.fullmatch(r"python:3\.\d+-slim-[a-z]+", base), base


def test_dockerfile_runtime_contract(image: Image) -> None:
    assert image.entrypoint == ["maxim-otel-bridge"]
    assert image.cmd == ["serve"]
    user, _, group = image.user.partition(":")
    assert user.isdigit() and int(user) > 0, f"USER must be a numeric non-root uid, got {image.user!r}"
    assert not group or group.isdigit()
    # Receivers listen on every interface inside the container, on the library's default ports.
    for name, default_port in LIBRARY_DEFAULT_PORTS.items():
        assert host_of(image.env[name]) == "0.0.0.0", name
        assert image.port(name) == default_port, name
    assert image.exposed == set(LIBRARY_DEFAULT_PORTS.values())
    assert image.volumes == [image.env[ENV_SPOOL]], "the spool directory is the declared volume"
    settings = effective_settings(image, {})
    assert settings.spool_path == Path(image.volumes[0])
    assert settings.dead_letter_file.parent == settings.spool_path, "refused entities are kept on the volume too"
    assert HEALTH_PATH in image.healthcheck and ENV_ADMIN in image.healthcheck


@pytest.mark.parametrize("path", [HEALTH_PATH, READY_PATH])
def test_probe_paths_are_served_by_the_admin_server(path: str) -> None:
    assert served_status(path) == 200


def test_admin_server_does_not_answer_any_path() -> None:
    # So the test above means something: a path the recipes could misspell is a 404.
    assert served_status("/health") == 404


def test_dockerfile_bakes_in_no_secret(image: Image) -> None:
    text = DOCKERFILE.read_text()
    declared = set(image.env) | {
        i.args.split("=")[0] for stage in image.stages for i in stage if i.keyword == "ARG"
    }
    assert not declared & {config.ENV_API_KEY, config.ENV_REPO_ID}
    assert not re.search(r"(?i)(api[_-]?key|token|password)\s*=", text)


def test_every_setting_the_image_sets_is_one_the_bridge_reads(image: Image) -> None:
    bridge_settings = {name for name in image.env if name.startswith("MAXIM_")}
    assert bridge_settings <= KNOWN_ENV, bridge_settings - KNOWN_ENV


def test_dockerignore_admits_only_what_the_build_copies() -> None:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", "start from excluding everything, then admit what the build needs"
    admitted = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = {
        src.rstrip("/")
        for i in dockerfile_instructions(DOCKERFILE.read_text())
        if i.keyword == "COPY" and not i.args.startswith("--from")
        for src in i.args.split()[:-1]
    }
    assert copied == admitted, f"copied {copied} vs admitted {admitted}"


def test_hadolint_passes() -> None:
    binary = venv_tool("hadolint")
    result = run_tool([binary, "--no-color", str(DOCKERFILE)], timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_root_user(tmp_path: Path) -> None:
    # The lint test above can fail: a Dockerfile with an unpinned, root-running image is reported.
    binary = venv_tool("hadolint")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get install curl\nUSER root\n")
    result = run_tool([binary, "--no-color", str(bad)], timeout=60)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3002" in result.stdout


# ---- Compose -------------------------------------------------------------------------------------------


def compose_env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_compose_file_follows_the_compose_specification() -> None:
    assert set(PyCompose.from_yaml(COMPOSE.read_text()).service_names()) == {"app", "maxim-otel-bridge"}


def test_compose_specification_check_rejects_a_misspelt_key() -> None:
    misspelt = COMPOSE.read_text().replace("    healthcheck:\n", "    healthchek:\n", 1)
    with pytest.raises(ValueError, match="healthchek"):
        PyCompose.from_yaml(misspelt)


def test_compose_runs_the_bridge_as_the_image_defines_it(image: Image) -> None:
    (compose,) = load_all(COMPOSE)
    services = compose["services"]
    bridges = {name: s for name, s in services.items() if BRIDGE_IMAGE_NAME in str(s.get("image", ""))}
    assert len(bridges) == 1, f"one bridge service, found {list(bridges)}"
    ((bridge_name, bridge),) = bridges.items()
    assert bridge["build"]["dockerfile"] == "Dockerfile"
    assert (COMPOSE.parent / bridge["build"]["context"] / bridge["build"]["dockerfile"]).resolve() == DOCKERFILE

    env = compose_env(bridge)
    assert set(env) <= KNOWN_ENV, set(env) - KNOWN_ENV
    for name in (config.ENV_API_KEY, config.ENV_REPO_ID):
        assert re.fullmatch(r"\$\{" + name + r"(:?-[^}]*)?\}", env[name]), f"{name} must come from the host environment"
    for name in (ENV_GRPC, ENV_HTTP, ENV_ADMIN, ENV_SPOOL):
        if name in env:
            assert env[name] == image.env[name], f"{name} differs from the image"

    plain = {name: value for name, value in env.items() if not value.startswith("${")}
    settings = effective_settings(image, plain)
    endpoints = (settings.grpc_endpoint, settings.http_endpoint, settings.admin_endpoint)
    assert {port_of(endpoint) for endpoint in endpoints} == image.exposed
    stop_grace = int(str(bridge["stop_grace_period"]).removesuffix("s"))
    assert stop_grace > settings.grace_period, "time to ship what is spooled before being killed"

    published = {int(str(p).rsplit(":", 1)[1].split("/")[0]) for p in bridge["ports"]}
    assert published == image.exposed
    for port in bridge["ports"]:
        assert str(port).startswith("127.0.0.1:"), f"publish on the host's loopback only: {port}"

    (volume,) = bridge["volumes"]
    source, target = volume.split(":")[:2]
    assert target == image.volumes[0]
    assert source in compose["volumes"], "the spool is a named volume"

    health = " ".join(bridge["healthcheck"]["test"])
    assert f":{image.port(ENV_ADMIN)}{HEALTH_PATH}" in health

    apps = {name: s for name, s in services.items() if name != bridge_name}
    assert apps, "an example application service"
    for app in apps.values():
        endpoint = urlsplit(compose_env(app)["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert endpoint.hostname == bridge_name
        protocol = compose_env(app).get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        expected = image.port(ENV_GRPC) if protocol == "grpc" else image.port(ENV_HTTP)
        assert endpoint.port == expected
        assert app["depends_on"][bridge_name]["condition"] == "service_healthy"


# ---- Kubernetes ----------------------------------------------------------------------------------------


def pod_containers(pod_spec: dict) -> list[dict]:
    return list(pod_spec.get("initContainers", [])) + list(pod_spec.get("containers", []))


def bridge_container(pod_spec: dict) -> dict:
    (container,) = [c for c in pod_spec_containers_with_image(pod_spec, BRIDGE_IMAGE_NAME)]
    if container in pod_spec.get("initContainers", []):
        assert container.get("restartPolicy") == "Always", "an init-container bridge must be a native sidecar"
    return container


def pod_spec_containers_with_image(pod_spec: dict, name: str) -> list[dict]:
    return [c for c in pod_containers(pod_spec) if f"/{name}:" in c["image"] or c["image"].startswith(f"{name}:")]


def container_env(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container.get("env", [])}


def resolve_port(container: dict, port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    return number


def check_bridge_container(container: dict, pod_spec: dict, image: Image) -> dict[str, str]:
    """Checks every bridge container shares; returns its plain-valued settings."""
    env = container_env(container)
    assert set(env) <= KNOWN_ENV, set(env) - KNOWN_ENV
    for name in (config.ENV_API_KEY, config.ENV_REPO_ID):
        assert "value" not in env[name], f"{name} must not be written into the manifest"
        assert env[name]["valueFrom"]["secretKeyRef"]["name"]
    values = {name: item["value"] for name, item in env.items() if "value" in item}
    admin_port = port_of(values.get(ENV_ADMIN, image.env[ENV_ADMIN]))
    assert host_of(values.get(ENV_ADMIN, image.env[ENV_ADMIN])) == "0.0.0.0", "the kubelet probes the pod IP"

    probes = {kind: container[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == HEALTH_PATH
    assert probes["readinessProbe"]["path"] == READY_PATH
    if "startupProbe" in container:
        probes["startupProbe"] = container["startupProbe"]["httpGet"]
        assert probes["startupProbe"]["path"] == HEALTH_PATH
    for probe in probes.values():
        assert resolve_port(container, probe["port"]) == admin_port

    spool_dir = values.get(ENV_SPOOL, image.env[ENV_SPOOL])
    assert spool_dir == image.volumes[0]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == spool_dir]
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    claim_names = {t["metadata"]["name"] for t in pod_spec.get("_claims", [])}
    assert mount["name"] in claim_names or "emptyDir" in volumes.get(mount["name"], {}), "spool on emptyDir or PVC"

    settings = effective_settings(image, values)
    if mount["name"] in claim_names:
        (claim,) = [t for t in pod_spec["_claims"] if t["metadata"]["name"] == mount["name"]]
        capacity = quantity_bytes(claim["spec"]["resources"]["requests"]["storage"])
    else:
        capacity = quantity_bytes(volumes[mount["name"]]["emptyDir"]["sizeLimit"])
    # An emptyDir over its sizeLimit gets the pod evicted: the spool must refuse data before that.
    assert ENV_SPOOL_MAX in values, f"set {ENV_SPOOL_MAX} below the spool volume's size"
    assert settings.spool_max_bytes <= capacity * 0.8, "leave room for the dead-letter file and SQLite's WAL"
    assert pod_spec["terminationGracePeriodSeconds"] > settings.grace_period + 10

    requests = container["resources"]["requests"]
    assert requests["cpu"] and requests["memory"]
    assert container.get("args", image.cmd) == image.cmd
    run_as = container.get("securityContext", {}).get("runAsUser", pod_spec.get("securityContext", {}).get("runAsUser"))
    assert str(run_as) == image.user.split(":")[0], "run as the image's user"
    assert pod_spec["securityContext"]["fsGroup"] == int(image.user.split(":")[0]), "the spool volume is writable"
    return values


@pytest.mark.parametrize("path", [K8S_SIDECAR, K8S_GATEWAY], ids=lambda p: p.name)
def test_kubernetes_manifests_match_the_api_schema(path: Path) -> None:
    for doc in load_all(path):
        # strict: an unknown or misspelt field (a probe's `paht`) is an error, not silently ignored.
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kubernetes_schema_check_rejects_a_misspelt_field() -> None:
    (deployment,) = load_all(K8S_SIDECAR)
    bridge_container(deployment["spec"]["template"]["spec"])["livenessProbe"]["httpGet"]["paht"] = HEALTH_PATH
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_kubernetes_sidecar_deployment(image: Image) -> None:
    (deployment,) = load_all(K8S_SIDECAR)
    assert deployment["kind"] == "Deployment"
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    spec = pod["spec"]
    bridge = bridge_container(spec)
    values = check_bridge_container(bridge, spec, image)

    # The app sends to the bridge over the pod's loopback, on the port the bridge listens on.
    (app,) = [c for c in spec["containers"] if c is not bridge]
    app_env = {name: item["value"] for name, item in container_env(app).items()}
    endpoint = urlsplit(app_env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    protocol = app_env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    listen = values.get(ENV_GRPC if protocol == "grpc" else ENV_HTTP, "")
    assert listen, "the sidecar states where it listens"
    assert endpoint.hostname == host_of(listen) == "127.0.0.1"
    assert endpoint.port == port_of(listen)
    assert spec["terminationGracePeriodSeconds"] >= 30


def test_kubernetes_gateway_routes_whole_traces_to_a_pool_of_bridges(image: Image) -> None:
    docs = load_all(K8S_GATEWAY)
    by_kind: dict[str, list[dict]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    (namespace,) = [d["metadata"]["name"] for d in by_kind["Namespace"]]
    assert all(d["metadata"].get("namespace") == namespace for d in docs if d["kind"] != "Namespace")

    (bridges,) = by_kind["StatefulSet"]
    spec = dict(bridges["spec"]["template"]["spec"])
    spec["_claims"] = bridges["spec"]["volumeClaimTemplates"]
    bridge = bridge_container(spec)
    values = check_bridge_container(bridge, spec, image)
    assert {p["containerPort"] for p in bridge["ports"]} == image.exposed
    for name in (ENV_GRPC, ENV_HTTP):
        assert values.get(name, image.env[name]) == image.env[name], "pool bridges listen on the pod IP"

    services = {s["metadata"]["name"]: s for s in by_kind["Service"]}
    pool = services[bridges["spec"]["serviceName"]]
    assert pool["spec"]["clusterIP"] == "None", "headless: DNS answers with every bridge's IP"
    pod_labels = bridges["spec"]["template"]["metadata"]["labels"]
    assert pool["spec"]["selector"].items() <= pod_labels.items()
    (pool_port,) = pool["spec"]["ports"]
    assert resolve_port(bridge, pool_port["targetPort"]) == image.port(ENV_GRPC) == pool_port["port"]

    # The ConfigMap carries exactly config/otel-collector-gateway.yaml.
    (config_map,) = by_kind["ConfigMap"]
    collector_text = COLLECTOR.read_text()
    assert config_map["data"]["config.yaml"] == collector_text
    collector = yaml.safe_load(collector_text)
    resolver = collector["exporters"]["loadbalancing"]["resolver"]["dns"]
    assert resolver["hostname"] == f"{pool['metadata']['name']}.{namespace}.svc.cluster.local"
    assert resolver["port"] == image.port(ENV_GRPC)

    (gateway,) = by_kind["Deployment"]
    (collector_container,) = gateway["spec"]["template"]["spec"]["containers"]
    assert "opentelemetry-collector-contrib" in collector_container["image"], "loadbalancing is a contrib exporter"
    (config_volume,) = gateway["spec"]["template"]["spec"]["volumes"]
    assert config_volume["configMap"]["name"] == config_map["metadata"]["name"]
    (mount,) = collector_container["volumeMounts"]
    assert collector_container["args"] == [f"--config={mount['mountPath']}/config.yaml"]
    front = services["otel-collector-gateway"]
    assert front["spec"]["selector"].items() <= gateway["spec"]["template"]["metadata"]["labels"].items()
    for port in front["spec"]["ports"]:
        assert resolve_port(collector_container, port["targetPort"]) == port["port"]
    receiver_ports = {port_of(p["endpoint"]) for p in collector["receivers"]["otlp"]["protocols"].values()}
    assert receiver_ports == {p["port"] for p in front["spec"]["ports"]}


def test_collector_gateway_balances_by_trace_id() -> None:
    collector = yaml.safe_load(COLLECTOR.read_text())
    exporter = collector["exporters"]["loadbalancing"]
    assert exporter["routing_key"] == "traceID"
    assert set(exporter["resolver"]) <= {"dns", "k8s"} and exporter["resolver"]
    assert "endpoint" not in exporter["protocol"]["otlp"], "the resolver supplies each bridge's endpoint"
    pipeline = collector["service"]["pipelines"]["traces"]
    assert pipeline["exporters"] == ["loadbalancing"]
    assert set(pipeline["receivers"]) <= set(collector["receivers"])
    assert set(pipeline["processors"]) <= set(collector["processors"])
    assert set(collector["service"]["extensions"]) <= set(collector["extensions"])
    # Long-lived gRPC connections must be recycled or an L4 Service never rebalances them.
    keepalive = collector["receivers"]["otlp"]["protocols"]["grpc"]["keepalive"]["server_parameters"]
    assert keepalive["max_connection_age"]


# ---- docs and scripts ----------------------------------------------------------------------------------


def test_deploy_doc_names_only_real_settings_ports_and_paths(image: Image) -> None:
    text = DEPLOY_DOC.read_text()
    named = set(re.findall(r"\bMAXIM_[A-Z_]+\b", text))
    assert named <= KNOWN_ENV | {COMPILE_VARIABLE}, named - KNOWN_ENV
    assert {ENV_GRPC, ENV_HTTP, ENV_ADMIN, ENV_SPOOL, config.ENV_API_KEY} <= named
    for port in image.exposed:
        assert str(port) in text
    assert HEALTH_PATH in text and READY_PATH in text
    paths = set(re.findall(r"\b13133(/[a-z]+)", text))
    assert paths <= {HEALTH_PATH, READY_PATH, "/metrics"}, paths
    for path in (COMPOSE, K8S_SIDECAR, K8S_GATEWAY, COLLECTOR, SMOKE):
        assert str(path.relative_to(ROOT)) in text, f"docs/deploy.md should point at {path.relative_to(ROOT)}"


def documented_commands(text: str) -> list[list[str]]:
    """Every `maxim-otel-bridge ...` command line in the doc's inline code, as argv (placeholders filled in)."""
    commands = []
    for code in re.findall(r"`([^`]*)`", text):
        match = re.search(r"\bmaxim-otel-bridge ((?:serve|trace|emulate)\b.*)", code)
        if match:
            filled = match.group(1).replace("<trace-id>", "4bf92f3577b34da6a3ce929d0e0e4736").replace("<port>", "8787")
            commands.append(shlex.split(filled))
    return commands


def test_commands_in_the_deploy_doc_parse_with_the_real_cli() -> None:
    commands = documented_commands(DEPLOY_DOC.read_text())
    assert any(argv[:2] == ["trace", "get"] and len(argv) > 2 for argv in commands)
    parser = build_parser()
    for argv in commands:
        if argv[:2] == ["trace", "get"] and len(argv) == 2:
            continue  # the command named in prose, without its id
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"docs/deploy.md shows `maxim-otel-bridge {shlex.join(argv)}`, which the CLI refuses ({exc})")


def test_documented_command_check_catches_a_wrong_option() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(documented_commands("`maxim-otel-bridge trace get --url http://x <trace-id>`")[0])


def test_container_smoke_script_passes_shellcheck() -> None:
    assert SMOKE.stat().st_mode & 0o111, "the smoke script is executable"
    result = run_tool(["bash", "-n", str(SMOKE)], timeout=30)
    assert result.returncode == 0, result.stderr
    result = run_tool([venv_tool("shellcheck"), str(SMOKE)], timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
