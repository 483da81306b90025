import os
import subprocess
import sys
from pathlib import Path

from sqlmodel import select

from service.models import ApiToken, User


def test_users_create_and_set_role(runner, session):
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            "Kenji@example.com",
            "--role",
            "engineer",
            "--password",
            "long-password-1",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "created kenji@example.com (engineer)" in result.output
    result = runner.invoke(
        args=["users", "set-role", "--email", "kenji@example.com", "--role", "qa"]
    )
    assert result.exit_code == 0, result.output
    user = session.exec(select(User).where(User.email == "kenji@example.com")).one()
    assert user.role == "qa"


def test_users_create_bad_input_is_one_line_exit_2(runner):
    result = runner.invoke(
        args=["users", "create", "--email", "x@example.com", "--role", "qa", "--password", "short"]
    )
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: password must be at least")
    assert "Traceback" not in result.output


def test_tokens_create_prints_the_token_once(runner, admin, session):
    result = runner.invoke(
        args=[
            "tokens",
            "create",
            "--name",
            "devices",
            "--scope",
            "heartbeats:write",
            "--by",
            admin.email,
        ]
    )
    assert result.exit_code == 0, result.output
    raw = result.stdout.strip().splitlines()[0]
    token = session.exec(select(ApiToken)).one()
    assert raw.startswith("rg_") and token.token_hash != raw


def test_demo_seeds_people_once(runner, session):
    result = runner.invoke(args=["demo", "--if-empty"])
    assert result.exit_code == 0, result.output
    assert session.exec(select(User).where(User.role == "admin")).first() is not None
    again = runner.invoke(args=["demo", "--if-empty"])
    assert "already present" in again.output


def test_db_check_passes(runner):
    result = runner.invoke(args=["db", "check"])
    assert result.exit_code == 0, result.output


def _relgov(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``relgov ARGS`` as a process of its own, with no configuration but ``env``."""
    base = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [str(Path(sys.executable).with_name("relgov")), *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_help_needs_no_configuration_and_logs_nothing(tmp_path):
    result = _relgov("--help")
    assert result.returncode == 0, result.stderr
    assert "notes" in result.stdout and "worker" in result.stdout and result.stderr == ""
    # With a production configuration too: listing the commands builds no app.
    production = {
        "RELGOV_ENV": "production",
        "RELGOV_SECRET_KEY": "k" * 40,
        "RELGOV_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}",
    }
    result = _relgov("--help", env=production)
    assert result.returncode == 0 and result.stderr == ""
    assert not (tmp_path / "none.db").exists()


def test_version_and_notes_generate_do_not_load_flask():
    probe = (
        "import sys; sys.argv = ['relgov', *sys.argv[1:]]\n"
        "from service.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('flask' in sys.modules, file=sys.stderr)\n"
    )
    for args in (["version"], ["notes", "generate", "--help"]):
        result = subprocess.run(
            [sys.executable, "-c", probe, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env={"PATH": os.environ.get("PATH", "")},
        )
        assert result.stderr.strip().splitlines()[-1] == "False", (args, result.stderr)
    assert _relgov("version").stdout.startswith("relgov ")


def test_a_command_needing_the_app_without_configuration_fails_in_one_line():
    result = _relgov("users", "list", env={"RELGOV_ENV": "production"})
    assert result.returncode == 2
    assert result.stderr.startswith("error: RELGOV_SECRET_KEY") and result.stderr.count("\n") == 1
