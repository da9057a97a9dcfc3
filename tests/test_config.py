"""Configuration: defaults, TOML file, TOLLGATE_* overrides and the errors for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import Config, ConfigError, load_config, split_host_port


def test_defaults_listen_on_loopback_with_embedded_storage() -> None:
    config = load_config(None, environ={})
    assert config == Config()
    assert config.grpc.listen == "127.0.0.1:50051"
    assert config.http.listen == "127.0.0.1:8080"
    assert config.database_url.startswith("sqlite:///")
    assert config.redis_url == ""


def test_file_then_environment_override(tmp_path: Path) -> None:
    path = tmp_path / "tollgate.toml"
    path.write_text(
        'admin_key = "from-file"\nlog_level = "debug"\n[grpc]\nlisten = "127.0.0.1:1"\nshutdown_grace_seconds = 3\n'
        '[http]\nlisten = "127.0.0.1:2"\n'
    )
    env = {
        "TOLLGATE_CONFIG": str(path),
        "TOLLGATE_GRPC_LISTEN": "127.0.0.1:0",
        "TOLLGATE_DATABASE_URL": "sqlite:////tmp/x.db",
        "TOLLGATE_REDIS_URL": "redis://127.0.0.1:6379/0",
        "TOLLGATE_HTTP_REQUEST_TIMEOUT_SECONDS": "2.5",
    }
    config = load_config(None, environ=env)
    assert config.admin_key == "from-file"
    assert config.log_level == "debug"
    assert config.grpc.listen == "127.0.0.1:0"
    assert config.grpc.shutdown_grace_seconds == 3.0
    assert config.http.listen == "127.0.0.1:2"
    assert config.http.request_timeout_seconds == 2.5
    assert config.database_url == "sqlite:////tmp/x.db"
    assert config.redis_url == "redis://127.0.0.1:6379/0"


def test_explicit_path_wins_over_environment_file(tmp_path: Path) -> None:
    chosen = tmp_path / "a.toml"
    chosen.write_text('admin_key = "a"\n')
    other = tmp_path / "b.toml"
    other.write_text('admin_key = "b"\n')
    assert load_config(str(chosen), environ={"TOLLGATE_CONFIG": str(other)}).admin_key == "a"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("databse_url = 'x'\n", "unknown config key(s): databse_url"),
        ("[grpc]\nlisen = 'x'\n", "unknown config key(s): grpc.lisen"),
        ("grpc = 3\n", "config key grpc must be a table"),
        ("[grpc]\nlisten = 50051\n", "config key grpc.listen must be a str, not int"),
        ("not toml at all", "cannot read config file"),
    ],
)
def test_file_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        load_config(str(path), environ={})


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(str(tmp_path / "absent.toml"), environ={})


def test_environment_values_are_parsed_by_type() -> None:
    with pytest.raises(ConfigError, match="TOLLGATE_GRPC_SHUTDOWN_GRACE_SECONDS must be a float"):
        load_config(None, environ={"TOLLGATE_GRPC_SHUTDOWN_GRACE_SECONDS": "soon"})


@pytest.mark.parametrize(
    ("listen", "expected"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:0", ("::1", 0)), (":9", ("127.0.0.1", 9))],
)
def test_split_host_port(listen: str, expected: tuple[str, int]) -> None:
    assert split_host_port(listen) == expected


@pytest.mark.parametrize("listen", ["localhost", "127.0.0.1:http", ""])
def test_split_host_port_rejects(listen: str) -> None:
    with pytest.raises(ConfigError):
        split_host_port(listen)


def test_model_tables_replace_the_default_catalogue(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(
        '[models."m-1"]\ncontext_window = 1000\nmax_output_tokens = 100\nfallbacks = ["m-2"]\n'
        '[models."m-2"]\nkind = "chat"\nvision = true\n'
    )
    config = load_config(str(path), environ={})
    assert set(config.models) == {"m-1", "m-2"}
    assert config.models["m-1"].fallbacks == ("m-2",)
    assert config.models["m-2"].vision is True


def test_default_catalogue_has_the_sold_models() -> None:
    models = load_config(None, environ={}).models
    assert models["deepseek-reasoner"].context_window == 65_536
    assert models["deepseek-reasoner"].reasoning is True
    assert models["claude-opus-4-7"].context_window == 200_000
    assert models["claude-sonnet-4-6"].vision and models["claude-opus-4-7"].vision
    assert not models["claude-haiku-4-5"].vision
    assert models["claude-sonnet-4-6"].fallbacks == ("claude-haiku-4-5",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[models]\nx = 1\n", "config key models must hold tables"),
        ('[models."x"]\nfallbacks = "y"\n', "config key models.x.fallbacks must be a list of strings"),
        ('[models."x"]\ncontext = 1\n', "unknown config key"),
    ],
)
def test_model_table_mistakes(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(str(path), environ={})


def test_the_example_file_loads_and_reads_keys_from_the_environment() -> None:
    example = Path(__file__).parent.parent / "tollgate.example.toml"
    config = load_config(str(example), environ={"DEEPSEEK_API_KEY": "k-123"})
    channels = {channel.name: channel for channel in config.channels}
    assert channels["deepseek"].api_key == "k-123"
    assert channels["anthropic"].api_key == ""
    assert "k-123" not in repr(channels["deepseek"])
    assert channels["simulated"].standby
    assert config.models["claude-sonnet-4-6"].fallbacks == ("claude-haiku-4-5",)


def test_keys_cannot_be_written_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[channels]]\nname = "x"\napi_key = "sk-secret"\n')
    with pytest.raises(ConfigError, match="cannot be set in the file"):
        load_config(str(path), environ={})


def test_channel_type_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[channels]]\nname = "x"\ntype = "gemini"\n')
    with pytest.raises(ConfigError, match="type must be one of"):
        load_config(str(path), environ={})
