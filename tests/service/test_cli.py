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
