"""Settings of `serve`: flags > env vars > YAML file > defaults, and invalid values refused naming the setting."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fakes.serve_process import CONSOLE_SCRIPT, clean_environ, free_port

from maxim_otel_bridge.config import ConfigError
from maxim_otel_bridge.sidecar import command
from maxim_otel_bridge.sidecar.settings import SETTINGS, SidecarSettings, add_setting_arguments, load_settings

ROOT = Path(__file__).resolve().parents[1]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_setting_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(parse(), environ={"XDG_STATE_HOME": str(tmp_path)})
    assert settings.grpc_endpoint == "127.0.0.1:4317"
    assert settings.http_endpoint == "127.0.0.1:4318"
    assert settings.admin_endpoint == "127.0.0.1:13133"
    assert settings.assembly_wait == 5.0
    assert settings.spool_sync == "full"
    assert settings.sources is not None and set(settings.sources.values()) == {"default"}


def test_flag_beats_env_beats_file_beats_default(tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text(
        "assembly_wait: 7\ngrace_period: 20s\nspool_max_bytes: 64MiB\nship_concurrency: 3\nspool_dir: /from/file\n"
    )
    env = {
        "MAXIM_BRIDGE_GRACE_PERIOD": "30",
        "MAXIM_BRIDGE_SHIP_CONCURRENCY": "5",
        "MAXIM_BRIDGE_SPOOL_DIR": "/from/env",
    }
    settings = load_settings(parse("--config", str(config), "--ship-concurrency", "9"), environ=env)
    assert settings.ship_concurrency == 9  # flag
    assert settings.grace_period == 30.0  # env over file
    assert settings.spool_dir == "/from/env"
    assert settings.assembly_wait == 7.0  # file
    assert settings.spool_max_bytes == 64 * 1024 * 1024
    assert settings.batch_max_entities == 500  # default
    assert settings.sources["ship_concurrency"] == "flag"
    assert settings.sources["grace_period"] == "env"
    assert settings.sources["assembly_wait"] == "file"
    assert settings.sources["batch_max_entities"] == "default"


def test_an_empty_env_var_does_not_hide_the_file(tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text("assembly_wait: 2\n")
    settings = load_settings(parse("--config", str(config)), environ={"MAXIM_BRIDGE_ASSEMBLY_WAIT": ""})
    assert settings.assembly_wait == 2.0


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (["--assembly-wait", "soon"], {}, "assembly_wait (--assembly-wait)"),
        ([], {"MAXIM_BRIDGE_SPOOL_MAX_BYTES": "lots"}, "spool_max_bytes (MAXIM_BRIDGE_SPOOL_MAX_BYTES)"),
        ([], {"MAXIM_BRIDGE_GRPC_ENDPOINT": "4317"}, "grpc_endpoint"),
        (["--ship-concurrency", "0"], {}, "ship_concurrency"),
        ([], {"MAXIM_BRIDGE_MAP_WORKERS": "-1"}, "map_workers (MAXIM_BRIDGE_MAP_WORKERS)"),
        (["--spool-sync", "off"], {}, "spool_sync"),
        (["--unknown-provider", "acme"], {}, "unknown_provider"),
        (["--grace-period", "-1"], {}, "grace_period"),
        (["--send-deadline", "0"], {}, "send_deadline"),
        (["--tls-cert", "/nonexistent.pem"], {}, "tls_cert and tls_key"),
        (["--http-endpoint", "127.0.0.1:4317"], {}, "must differ"),
    ],
)
def test_invalid_values_are_refused_naming_the_setting(argv: list[str], env: dict, named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(parse(*argv), environ=env)
    assert named in str(caught.value)


def test_the_auth_token_is_never_shown(tmp_path: Path) -> None:
    settings = load_settings(parse("--auth-token", "tok-secret-42"), environ={})
    assert settings.auth_token.reveal() == "tok-secret-42"
    assert "tok-secret-42" not in repr(settings)


def test_content_settings_from_flags_env_and_file(tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text("capture_content: false\nredact:\n  - 'sk-[a-z0-9]+'\n  - '\\d{16}'\n")
    from_file = load_settings(parse("--config", str(config)), environ={})
    assert from_file.capture_content is False
    assert [p.pattern for p in from_file.redact] == ["sk-[a-z0-9]+", r"\d{16}"]
    assert "sk-[a-z0-9]" not in repr(from_file), "patterns may spell out secrets: not in the repr"
    from_env = load_settings(
        parse(), environ={"MAXIM_BRIDGE_CAPTURE_CONTENT": "off", "MAXIM_BRIDGE_REDACT": '["a+b", "[0-9]{3}"]'}
    )
    assert from_env.capture_content is False
    assert [p.pattern for p in from_env.redact] == ["a+b", "[0-9]{3}"]
    lines = load_settings(parse("--redact", "[0-9]{16}\nsk-\\w+"), environ={})
    assert [p.pattern for p in lines.redact] == ["[0-9]{16}", r"sk-\w+"], "a lone character class is not JSON"
    defaults = load_settings(parse(), environ={})
    assert (defaults.capture_content, defaults.redact) == (True, ())


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (["--redact", '["ok", "sk-live-(oops"]'], {}, "invalid redact (--redact) = ****: redact[1] is not a valid"),
        ([], {"MAXIM_BRIDGE_REDACT": "x?"}, "invalid redact (MAXIM_BRIDGE_REDACT) = ****: redact[0] matches the empty"),
        (["--capture-content", "perhaps"], {}, "capture_content (--capture-content)"),
    ],
)
def test_a_bad_content_setting_is_refused_without_quoting_the_patterns(argv: list[str], env: dict, named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(parse(*argv), environ=env)
    assert named in str(caught.value)
    assert "sk-live" not in str(caught.value)


def test_config_file_errors_name_the_file_and_key(tmp_path: Path) -> None:
    bad_key = tmp_path / "typo.yaml"
    bad_key.write_text("assembly_wiat: 3\n")
    with pytest.raises(ConfigError, match="assembly_wiat"):
        load_settings(parse("--config", str(bad_key)), environ={})
    bad_value = tmp_path / "bad.yaml"
    bad_value.write_text("batch_max_entities: many\n")
    with pytest.raises(ConfigError, match=r"batch_max_entities in .*bad.yaml"):
        load_settings(parse("--config", str(bad_value)), environ={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(parse("--config", str(tmp_path / "missing.yaml")), environ={})
    not_yaml = tmp_path / "list.yaml"
    not_yaml.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(parse("--config", str(not_yaml)), environ={})


def test_sizes_and_durations_accept_units() -> None:
    settings = load_settings(
        parse("--spool-max-bytes", "2GiB", "--assembly-wait", "250ms", "--backoff-max", "2m"), environ={}
    )
    assert settings.spool_max_bytes == 2 * 1024**3
    assert settings.assembly_wait == 0.25
    assert settings.backoff_max == 120.0


def test_serve_exits_2_with_a_message_naming_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert command.run(parse("--assembly-wait", "soon")) == 2
    assert "assembly_wait" in capsys.readouterr().err


def test_the_example_config_file_lists_every_setting_with_its_default() -> None:
    example = ROOT / "config" / "bridge.yaml"
    text = example.read_text()
    values = yaml.safe_load(text)
    # Settings without a default value (paths) and secrets are present as comments only.
    assert set(values) == {s.name for s in SETTINGS if s.default is not None and not s.secret}
    settings = load_settings(parse("--config", str(example)), environ={})
    defaults = load_settings(parse(), environ={})
    for setting in SETTINGS:
        if setting.name in values:
            assert getattr(settings, setting.name) == getattr(defaults, setting.name), setting.name
    for setting in SETTINGS:
        assert f"{setting.name}:" in text, f"config/bridge.yaml does not mention {setting.name}"


def test_the_docs_table_lists_every_setting() -> None:
    doc = (ROOT / "docs" / "sidecar.md").read_text()
    for setting in SETTINGS:
        assert f"`{setting.flag}`" in doc and f"`{setting.env}`" in doc and f"`{setting.name}`" in doc, setting.name


def test_the_readme_table_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    for setting in SETTINGS:
        assert f"| `{setting.flag}` | `{setting.env}` |" in readme, setting.name


def test_every_setting_is_a_field() -> None:
    fields = set(SidecarSettings.__dataclass_fields__)
    assert {s.name for s in SETTINGS} <= fields


def test_the_console_script_exits_2_for_an_invalid_setting(tmp_path: Path) -> None:
    proc = subprocess.run(
        [CONSOLE_SCRIPT, "serve", "--spool-dir", str(tmp_path / "spool"), "--spool-max-bytes", "lots"],
        env=clean_environ({"MAXIM_BRIDGE_ASSEMBLY_WAIT": "1"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "spool_max_bytes (--spool-max-bytes)" in proc.stderr


def test_a_port_in_use_exits_1_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [
                CONSOLE_SCRIPT,
                "serve",
                "--spool-dir",
                str(tmp_path / "spool"),
                "--grpc-endpoint",
                f"127.0.0.1:{free_port()}",
                "--http-endpoint",
                f"127.0.0.1:{port}",
                "--admin-endpoint",
                f"127.0.0.1:{free_port()}",
                "--grace-period",
                "1",
            ],
            env=clean_environ({"MAXIM_API_KEY": "k", "MAXIM_LOG_REPO_ID": "r", "MAXIM_BASE_URL": "http://127.0.0.1:9"}),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 1, proc.stderr
    assert f"127.0.0.1:{port}" in proc.stderr


def test_a_spool_that_is_not_a_database_exits_1_naming_the_problem(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "spool.sqlite3").write_bytes(b"this is not an SQLite database, it is junk" * 100)
    proc = subprocess.run(
        [
            CONSOLE_SCRIPT,
            "serve",
            "--spool-dir",
            str(spool),
            "--grpc-endpoint",
            f"127.0.0.1:{free_port()}",
            "--http-endpoint",
            f"127.0.0.1:{free_port()}",
            "--admin-endpoint",
            f"127.0.0.1:{free_port()}",
        ],
        env=clean_environ({"MAXIM_API_KEY": "k", "MAXIM_LOG_REPO_ID": "r", "MAXIM_BASE_URL": "http://127.0.0.1:9"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "cannot start" in proc.stderr and "not a database" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_serve_script_passes_shellcheck() -> None:
    shellcheck = Path(sys.executable).with_name("shellcheck")
    proc = subprocess.run(
        [str(shellcheck), str(ROOT / "scripts" / "serve.sh")], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (ROOT / "scripts" / "serve.sh").stat().st_mode & 0o111, "scripts/serve.sh is executable"
