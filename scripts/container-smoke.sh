#!/usr/bin/env bash
# Container smoke test: build the image from ./Dockerfile with podman, run it, and prove it works end to end.
#
#   sudo ./scripts/container-smoke.sh
#
# 1. Makes sure podman, runc and debootstrap are installed (apt), and that ./.venv exists.
# 2. Builds the Dockerfile's base image locally with debootstrap (Debian minbase + python3, python3-venv,
#    python3-pip, the Python headers, ca-certificates, from the mirror apt already uses) and imports it under
#    the exact name the Dockerfile's FROM uses, unless it is already there. No registry is contacted for the base.
# 3. Builds the image (vfs storage, chroot isolation: no daemon, no overlayfs, no user namespaces needed),
#    with the host's CA bundle and pip settings mounted into the build so pip trusts what the host trusts.
# 4. Runs it (read-only, runc, host network, explicit ulimits), waits for /healthz, runs `podman healthcheck run`,
#    sends one OTLP/HTTP and one OTLP/gRPC request made by the real OpenTelemetry SDK, and checks that the
#    trace reached a local batch endpoint (a fake Maxim `POST /v1/logs/batch`) as schema-valid entities.
# 5. Stops it with SIGTERM and requires exit code 0 (the bridge runs as PID 1).
# 6. Runs it again without an API key (the embedded local store), sends a trace, reads it back with
#    `maxim-otel-bridge trace get` inside the container, stops it the same way, then cleans up.
#
# Idempotent: the base image is kept in a dedicated podman storage and reused; everything else is removed.
# Settings (environment): SMOKE_IMAGE (tag to build, default maxim-otel-bridge:smoke), SMOKE_KEEP_IMAGE=1
# (keep it afterwards), SMOKE_STORAGE_ROOT (podman storage, default /var/lib/maxim-otel-bridge-smoke),
# SMOKE_TIMEOUT (seconds to wait for health and delivery, default 60).
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
image="${SMOKE_IMAGE:-maxim-otel-bridge:smoke}"
storage_root="${SMOKE_STORAGE_ROOT:-/var/lib/maxim-otel-bridge-smoke}"
timeout_s="${SMOKE_TIMEOUT:-60}"
container="maxim-otel-bridge-smoke-$$"
local_container="maxim-otel-bridge-smoke-local-$$"
started_at=$SECONDS

step() { printf '\n==> [%3ss] %s\n' "$((SECONDS - started_at))" "$*" >&2; }
die() {
  printf '\ncontainer smoke FAILED: %s\n' "$*" >&2
  exit 1
}

# A dedicated storage, so this never collides with another podman setup (or its storage driver) on the host.
podman_cmd=(podman --storage-driver vfs --root "$storage_root/storage" --runroot "$storage_root/run")
# Without a running systemd, podman logs an error for each healthcheck timer it cannot schedule; that is
# expected here (the health check is run explicitly), so only that line is filtered out of its stderr.
pm() { "${podman_cmd[@]}" "$@" 2> >(grep -v 'unable to get systemd connection' >&2); }
# Every container runs with runc and explicit ulimits: crun, and podman's default ulimits, fail on some hosts.
run_flags=(--runtime runc --ulimit nofile=1024:4096 --ulimit nproc=1024:1024)

[ "$(id -u)" -eq 0 ] || die "run as root: rootful podman with runc, and debootstrap, need it (sudo $0)"
[ -f "$repo_root/Dockerfile" ] || die "no Dockerfile in $repo_root"

# ---- tools ----
missing=()
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  step "installing ${missing[*]} with apt"
  apt-get update -q || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" \
    || die "could not install ${missing[*]} with apt"
fi

python="$repo_root/.venv/bin/python"
if [ ! -x "$python" ]; then
  step "creating .venv (the helper uses the OpenTelemetry SDK and the package's schema validator)"
  python3 -m venv "$repo_root/.venv" || die "python3 -m venv failed"
  "$repo_root/.venv/bin/pip" install -q -e "${repo_root}[test]" || die "pip install -e .[test] failed"
fi

work="$(mktemp -d /var/tmp/maxim-otel-bridge-smoke.XXXXXX)"
sink_pid=""
# shellcheck disable=SC2329 # invoked by the EXIT trap below
cleanup() {
  local rc=$?
  set +e
  for name in "$container" "$local_container"; do
    if pm container exists "$name" 2>/dev/null; then
      if [ "$rc" -ne 0 ]; then
        echo "---- log of $name ----" >&2
        pm logs "$name" >&2
        echo "-----------------------" >&2
      fi
      pm rm --force --volumes "$name" >/dev/null
    fi
  done
  if [ -n "$sink_pid" ]; then
    if ! kill "$sink_pid" 2>/dev/null && [ "$rc" -ne 0 ]; then
      echo "---- the local batch endpoint exited early; its log: ----" >&2
      cat "$work/sink.log" >&2
    fi
    wait "$sink_pid" 2>/dev/null
  fi
  if [ "${SMOKE_KEEP_IMAGE:-0}" != 1 ] && pm image exists "$image" 2>/dev/null; then
    pm rmi --force "$image" >/dev/null
  fi
  # A failed debootstrap can leave /proc and /sys mounted inside its target: unmount before deleting.
  findmnt -rn -o TARGET | grep -F -- "$work/" | sort -r | xargs -r umount -l
  rm -rf --one-file-system "$work"
  if [ "$rc" -eq 0 ]; then
    printf '\ncontainer smoke passed in %ss\n' "$((SECONDS - started_at))" >&2
  fi
}
trap cleanup EXIT

# ---- base image: exactly what the Dockerfile's FROM names ----
mapfile -t bases < <(sed -nE 's/^FROM[[:space:]]+([^[:space:]]+).*/\1/p' "$repo_root/Dockerfile" | sort -u)
[ "${#bases[@]}" -eq 1 ] || die "expected every stage to use one base image, found: ${bases[*]}"
base="${bases[0]}"
case "$base" in
  */*) base_ref="$base" ;;
  *) base_ref="docker.io/library/$base" ;;
esac
suite="${base##*-}" # python:3.11-slim-bookworm -> bookworm
[ -f "/usr/share/debootstrap/scripts/$suite" ] \
  || die "cannot tell the Debian release from base image '$base' (expected a tag ending in -<codename>)"

# Like the official python images, the base carries the interpreter's C headers (the build stage compiles).
base_has_headers() {
  pm run --rm "${run_flags[@]}" --network none --no-healthcheck --entrypoint python3 "$base_ref" -c '
import os, sysconfig
raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'
}
if pm image exists "$base_ref" && base_has_headers; then
  step "base image $base_ref present: reusing it"
else
  if pm image exists "$base_ref"; then
    step "base image $base_ref has no Python headers: building it again"
    pm rmi "$base_ref" >/dev/null || die "cannot remove the old base image $base_ref"
  fi
  # The mirror apt already uses for this release's main component (works behind the host's apt proxy/mirror).
  # shellcheck disable=SC2016 # $(...) here is apt's own field syntax, not the shell's
  find_mirror() {
    # shellcheck disable=SC2016 # $(...) here is apt's own field syntax, not the shell's
    apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 'Created-By: Packages' \
      | awk -v s="$suite" '!found && $2 == s && $3 == "main" { print $1; found = 1 }'
  }
  mirror="$(find_mirror)"
  if [ -z "$mirror" ]; then
    apt-get update -q >/dev/null || die "apt-get update failed"
    mirror="$(find_mirror)"
  fi
  [ -n "$mirror" ] || die "no apt source for Debian '$suite' main in /etc/apt/sources.list*: cannot debootstrap"
  step "debootstrapping Debian $suite (minbase + python3 and its headers) from $mirror"
  rootfs="$work/rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,libpython3-dev,ca-certificates \
    "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed (full log above)"; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  step "importing it as $base_ref"
  tar -C "$rootfs" --numeric-owner -c . \
    | pm import \
      --change 'ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV=LANG=C.UTF-8' \
      --change 'CMD=["python3"]' \
      - "$base_ref" >/dev/null \
    || die "podman import of the base image failed"
  rm -rf --one-file-system "$rootfs"
fi
# The tag promises a Python version; Debian's release decides the one debootstrap installed. Say so if they differ.
tag_python="$(sed -nE 's/^[^:]*:([0-9]+\.[0-9]+).*/\1/p' <<<"$base")"
base_python="$(pm run --rm "${run_flags[@]}" --network none --no-healthcheck --entrypoint python3 "$base_ref" \
  -c 'import sys; print("%d.%d" % sys.version_info[:2])')" || die "cannot run python3 in $base_ref"
[ -z "$tag_python" ] || [ "$tag_python" = "$base_python" ] \
  || die "$base_ref has Python $base_python but its tag says $tag_python: remove it (podman --root $storage_root/storage rmi $base_ref) or fix FROM"

# ---- build ----
# pip inside the build must trust the host's CAs and use the host's index, if it has one configured.
ca_bundle=""
for candidate in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" "${REQUESTS_CA_BUNDLE:-}" /etc/ssl/certs/ca-certificates.crt; do
  if [ -n "$candidate" ] && [ -f "$candidate" ]; then
    ca_bundle="$candidate"
    break
  fi
done
[ -n "$ca_bundle" ] || die "no CA bundle found on the host (looked at PIP_CERT, SSL_CERT_FILE, /etc/ssl/certs)"
index_url="${PIP_INDEX_URL:-$(python3 -m pip config get global.index-url 2>/dev/null || true)}"
{
  echo "[global]"
  echo "cert = /etc/ssl/certs/ca-certificates.crt"
  echo "timeout = 120"
  # Only network indexes make sense inside the build; file:// mirrors of the host are not mounted.
  case "$index_url" in http://* | https://*) echo "index-url = $index_url" ;; esac
} >"$work/pip.conf"

step "building $image from $repo_root/Dockerfile"
pm build \
  --isolation chroot --layers=false --format docker --pull=never \
  --volume "$ca_bundle:/etc/ssl/certs/ca-certificates.crt:ro" \
  --volume "$work/pip.conf:/etc/pip.conf:ro" \
  --tag "$image" --file "$repo_root/Dockerfile" "$repo_root" \
  || die "podman build failed"
size="$(pm image inspect --format '{{.Size}}' "$image")"
step "image built: $((size / 1024 / 1024)) MiB"

# ---- static checks on the image ----
user="$(pm image inspect --format '{{.Config.User}}' "$image")"
case "${user%%:*}" in
  "" | 0 | root) die "the image runs as root (USER is '$user')" ;;
esac
image_env="$(pm image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$image")"
grep -q '^MAXIM_API_KEY=' <<<"$image_env" && die "the image bakes in MAXIM_API_KEY"
pm run --rm "${run_flags[@]}" --network none --no-healthcheck --entrypoint python3 "$image" -c '
import os, shutil, sys
assert os.getuid() != 0, "running as root"
compilers = [c for c in ("gcc", "cc", "g++", "make") if shutil.which(c)]
assert not compilers, f"compilers in the runtime image: {compilers}"
import maxim_otel_bridge
from maxim_otel_bridge.mapping import COMPILED
assert COMPILED, "the mapping is not compiled"
print("runtime image ok: uid", os.getuid(), "package", maxim_otel_bridge.__version__, "compiled mapping")
' || die "runtime image checks failed"

# ---- a local batch endpoint (fake Maxim) and the OTLP sender ----
cat >"$work/smoke_helper.py" <<'PY'
"""Helper for container-smoke.sh: free ports, the fake Maxim batch endpoint, an OTLP sender, the check."""

from __future__ import annotations

import json
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_ports(count: int) -> None:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    print(" ".join(str(s.getsockname()[1]) for s in sockets))
    for s in sockets:
        s.close()


def sink(port_file: str, requests_file: str, api_key: str) -> None:
    """Run the project's fake Maxim batch endpoint; mirror what it received into a JSON file for `check`."""
    from fakes.batch_sink import BatchSink

    with BatchSink(api_key=api_key) as batch_sink:
        Path(port_file).write_text(str(batch_sink.port))
        seen = -1
        while True:
            requests = batch_sink.requests
            if len(requests) != seen:
                seen = len(requests)
                dump = [
                    {"status": r.status, "body": r.body, "problems": [str(p) for p in r.problems]}
                    for r in requests
                ]
                tmp = Path(requests_file + ".tmp")
                tmp.write_text(json.dumps(dump))
                tmp.replace(requests_file)  # atomic: `check` never reads half a file
            time.sleep(0.1)


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                print(f"{url}: {response.status}")
                return
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.25)
    sys.exit(f"{url} did not answer 2xx within {timeout:.0f}s (last: {last})")


def send(http_port: str, grpc_port: str) -> None:
    """One trace, two OTLP requests from the real SDK exporters: the root over HTTP, an LLM call over gRPC."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult

    provider = TracerProvider(resource=Resource.create({"service.name": "container-smoke"}))
    tracer = provider.get_tracer("container-smoke")
    with tracer.start_as_current_span("smoke.request") as root:
        with tracer.start_as_current_span("chat gpt-4o-mini") as llm:
            llm.set_attribute("gen_ai.operation.name", "chat")
            llm.set_attribute("gen_ai.system", "openai")
            llm.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            llm.set_attribute("gen_ai.response.model", "gpt-4o-mini")
            llm.set_attribute("gen_ai.usage.input_tokens", 12)
            llm.set_attribute("gen_ai.usage.output_tokens", 3)
    provider.shutdown()
    grpc_result = GrpcExporter(endpoint=f"http://127.0.0.1:{grpc_port}", insecure=True, timeout=10).export([llm])
    http_result = HttpExporter(endpoint=f"http://127.0.0.1:{http_port}/v1/traces", timeout=10).export([root])
    if grpc_result is not SpanExportResult.SUCCESS or http_result is not SpanExportResult.SUCCESS:
        sys.exit(f"OTLP export failed: gRPC {grpc_result.name}, HTTP {http_result.name}")
    print(f"{root.context.trace_id:032x}")


def check(requests_file: str, trace_id: str, repo_id: str, timeout: float) -> None:
    """Wait until the trace and its LLM call were accepted; every batch received must be schema-valid."""
    from maxim_otel_bridge.schema import validate_batch

    deadline = time.monotonic() + timeout
    while True:
        path = Path(requests_file)
        requests = json.loads(path.read_text()) if path.exists() else []
        for request in requests:
            problems = request["problems"] or validate_batch(request["body"])
            if problems or request["status"] != 200:
                sys.exit(f"the bridge sent a batch the endpoint refused ({request['status']}): {problems}")
            if request["body"].get("repoId") != repo_id:
                sys.exit(f"batch for repo {request['body'].get('repoId')!r}, expected {repo_id!r}")
        entities = [e for request in requests for e in request["body"]["logs"]]
        mine = [e for e in entities if trace_id in json.dumps(e)]
        types = {e.get("type") for e in mine}
        if "trace" in types and "generation" in types:
            print(f"delivered: {len(requests)} batch(es), entity types for trace {trace_id}: {sorted(types)}")
            return
        if time.monotonic() > deadline:
            sys.exit(f"trace {trace_id} not delivered within {timeout:.0f}s; {len(requests)} batch(es): {entities}")
        time.sleep(0.5)


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command == "free-ports":
        free_ports(int(rest[0]))
    elif command == "sink":
        sink(*rest)
    elif command == "wait-http":
        wait_http(rest[0], float(rest[1]))
    elif command == "send":
        send(*rest)
    elif command == "check":
        check(rest[0], rest[1], rest[2], float(rest[3]))
    else:
        sys.exit(f"unknown command {command}")
PY
# PYTHONPATH=tests: the helper imports the project's fake Maxim endpoint (tests/fakes/batch_sink.py).
helper() { PYTHONPATH="$repo_root/tests" "$python" "$work/smoke_helper.py" "$@"; }

api_key="smoke-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
repo_id="smoke-repo"
# Started directly (not through the `helper` function) so that $! is the Python process itself.
PYTHONPATH="$repo_root/tests" "$python" "$work/smoke_helper.py" sink "$work/sink.port" "$work/requests.json" \
  "$api_key" 2>"$work/sink.log" &
sink_pid=$!
for _ in $(seq 50); do [ -s "$work/sink.port" ] && break; sleep 0.1; done
[ -s "$work/sink.port" ] || die "the local batch endpoint did not start: $(cat "$work/sink.log")"
sink_port="$(cat "$work/sink.port")"

# ---- run ----
# Host network: the container reaches the batch endpoint on the host's loopback. The image binds 0.0.0.0 by
# default; here the endpoints move to free loopback ports so nothing else on the host can collide or connect.
read -r grpc_port http_port admin_port < <(helper free-ports 3)
step "running $container (OTLP gRPC :$grpc_port, HTTP :$http_port, admin :$admin_port, Maxim at :$sink_port)"
# --read-only: the bridge writes only to its spool volume (and /tmp, a tmpfs), as the Kubernetes recipes
# (readOnlyRootFilesystem) promise.
# --health-interval disable: podman would schedule the HEALTHCHECK with systemd timers, which need a running
# systemd; the check itself stays in the container and is run explicitly below.
pm run --detach --name "$container" "${run_flags[@]}" --network host --health-interval disable --read-only \
  --env MAXIM_API_KEY="$api_key" \
  --env MAXIM_LOG_REPO_ID="$repo_id" \
  --env MAXIM_BASE_URL="http://127.0.0.1:$sink_port" \
  --env MAXIM_BRIDGE_GRPC_ENDPOINT="127.0.0.1:$grpc_port" \
  --env MAXIM_BRIDGE_HTTP_ENDPOINT="127.0.0.1:$http_port" \
  --env MAXIM_BRIDGE_ADMIN_ENDPOINT="127.0.0.1:$admin_port" \
  "$image" >/dev/null \
  || die "podman run failed"

# shellcheck disable=SC2016 # a Go template, not a shell expansion
spool_dir="$(pm image inspect --format '{{range $k, $v := .Config.Volumes}}{{$k}}{{end}}' "$image")"
[ -n "$spool_dir" ] || die "the image declares no volume for the spool"
# Captured first: `grep -q` stops reading at the first match, and under pipefail podman's SIGPIPE would fail it.
mounts="$(pm inspect --format '{{range .Mounts}}{{println .Destination}}{{end}}' "$container")"
grep -qx -- "$spool_dir" <<<"$mounts" || die "the spool $spool_dir is not on a volume in the running container"

step "waiting for /healthz and /readyz"
helper wait-http "http://127.0.0.1:$admin_port/healthz" "$timeout_s" || die "/healthz never answered"
helper wait-http "http://127.0.0.1:$admin_port/readyz" "$timeout_s" || die "/readyz never answered"

step "podman healthcheck run"
health="$(pm healthcheck run "$container" 2>&1)" || die "the image's HEALTHCHECK failed: $health"
echo "${health:-healthy}"

step "sending one trace over OTLP/gRPC and OTLP/HTTP"
trace_id="$(helper send "$http_port" "$grpc_port")" || die "OTLP export into the container failed"
echo "trace $trace_id"

step "waiting for the trace at the batch endpoint"
helper check "$work/requests.json" "$trace_id" "$repo_id" "$timeout_s" || die "the trace did not arrive intact"

step "stopping with SIGTERM"
pm stop --time 30 "$container" >/dev/null || die "podman stop failed"
exit_code="$(pm inspect --format '{{.State.ExitCode}}' "$container")"
[ "$exit_code" = 0 ] || die "the bridge exited with $exit_code on SIGTERM (expected a clean 0)"
echo "exit code 0"
container_log="$(pm logs "$container" 2>&1)"
grep -qF -- "$api_key" <<<"$container_log" && die "the API key appears in the container log"

# ---- no API key: the embedded local store, read back with `trace get` inside the container ----
read -r grpc_port http_port admin_port store_port < <(helper free-ports 4)
step "running $local_container without an API key (embedded local store on :$store_port)"
pm run --detach --name "$local_container" "${run_flags[@]}" --network host --health-interval disable --read-only \
  --env MAXIM_BRIDGE_GRPC_ENDPOINT="127.0.0.1:$grpc_port" \
  --env MAXIM_BRIDGE_HTTP_ENDPOINT="127.0.0.1:$http_port" \
  --env MAXIM_BRIDGE_ADMIN_ENDPOINT="127.0.0.1:$admin_port" \
  --env MAXIM_BRIDGE_LOCAL_STORE_ENDPOINT="127.0.0.1:$store_port" \
  "$image" >/dev/null \
  || die "podman run (local store) failed"
helper wait-http "http://127.0.0.1:$admin_port/readyz" "$timeout_s" || die "/readyz never answered (local store)"
trace_id="$(helper send "$http_port" "$grpc_port")" || die "OTLP export into the container failed (local store)"

step "maxim-otel-bridge trace get $trace_id (inside the container)"
deadline=$((SECONDS + timeout_s))
while true; do
  rc=0
  pm exec "$local_container" maxim-otel-bridge trace get --json --base-url "http://127.0.0.1:$store_port" \
    "$trace_id" >"$work/trace.json" 2>"$work/trace.err" || rc=$?
  trace_get_output="$(cat "$work/trace.err" "$work/trace.json")"
  if [ "$rc" -eq 0 ]; then
    grep -qF -- "$trace_id" "$work/trace.json" || die "trace get answered without the trace id: $trace_get_output"
    break
  fi
  # 3: not in the store yet (still being assembled); anything else will not get better by waiting.
  [ "$rc" -eq 3 ] || die "trace get failed with exit code $rc: $trace_get_output"
  [ "$SECONDS" -lt "$deadline" ] || die "trace $trace_id never reached the local store: $trace_get_output"
  sleep 0.5
done
echo "read back from the local store ($(wc -c <"$work/trace.json") bytes of JSON)"
pm stop --time 30 "$local_container" >/dev/null || die "podman stop failed (local store)"
exit_code="$(pm inspect --format '{{.State.ExitCode}}' "$local_container")"
[ "$exit_code" = 0 ] || die "the bridge (local store) exited with $exit_code on SIGTERM (expected a clean 0)"
echo "exit code 0"
exit 0
