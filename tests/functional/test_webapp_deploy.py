"""The team's web app, deployed by the one deploy command and removed by teardown (#29.1).

On moto (test_deploy's MotoDeployer): the source zip in the stage's bucket, the web app stack with
the API and the user pool's client, its URL remembered as the stage's BACKDROP_APP_URL and given to
the Lambdas (so the job emails link to it), a redeploy that changes nothing, --no-webapp, and
teardown. moto's CloudFormation has no ECS Express Mode, so the service is a stand-in stack there;
the real template is rendered and linted by test_deploy.py::test_templates_are_cfn_lint_clean.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from test_deploy import _client, fake_chalice, make_deployer, moto_server, on_moto  # noqa: F401  (fixtures)

from backend import settings as deployment_settings
from backend import templates, webapp
from backend.deploy import ChaliceResult, stack_name

APP_URL = "https://backdrop-dev-webapp.ecs.us-east-1.on.aws"


def _counting(runs: list[dict[str, str]]) -> Any:
    def run(stage: str, env: dict[str, str], region: str, project_dir: Path) -> ChaliceResult:
        runs.append(dict(env))
        return fake_chalice(stage, env, region, project_dir)

    return run


def test_one_deploy_gives_the_team_a_web_app_and_the_emails_link_to_it(on_moto, tmp_path, moto_server) -> None:  # noqa: F811 - fixtures
    deployer = make_deployer(tmp_path)
    runs: list[dict[str, str]] = []
    deployer.run_chalice = _counting(runs)
    outputs = deployer.deploy(email="", model="stability-inpaint", max_concurrency=8, settings={})
    assert outputs["AppUrl"] == APP_URL
    # the URL exists only once the service does: the Lambdas get it by a second chalice deploy
    assert [r.get("BACKDROP_APP_URL") for r in runs] == [None, APP_URL]
    assert f"BACKDROP_APP_URL={APP_URL}: the job emails link to it (chalice deploy again)" in deployer.said
    remembered = deployment_settings.effective(deployer.project, {}, [])
    assert remembered["BACKDROP_APP_URL"] == APP_URL
    # the stack was given this deployment's API and app client, and the source it runs
    (parameters,) = deployer.webapp_parameters
    assert parameters["ApiUrl"] == outputs["ApiUrl"] and parameters["UserPoolClientId"] == outputs["UserPoolClientId"]
    s3 = _client("s3", moto_server)
    stored = s3.get_object(Bucket=outputs["BucketName"], Key=parameters["SourceKey"])["Body"].read()
    assert stored == webapp.source_zip()

    # the same code again: no change anywhere, one chalice deploy
    runs.clear()
    deployer.said.clear()
    deployer.deploy(email="", model="stability-inpaint", max_concurrency=8, settings=remembered)
    assert len(runs) == 1 and runs[0]["BACKDROP_APP_URL"] == APP_URL
    first, again = deployer.webapp_parameters
    # the same source key; MotoDeployer's stand-in auth makes a new pool (and client) each time
    assert {k for k in first if first[k] != again[k]} <= {"UserPoolClientId"}
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=outputs["BucketName"], Prefix="webapp/")["Contents"]] == [
        first["SourceKey"]
    ]

    deployer.teardown()
    cfn = _client("cloudformation", moto_server)
    live = [s["StackName"] for s in cfn.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"]
    assert stack_name("dev", "webapp") not in live and not [n for n in live if n.startswith("backdrop-dev-")]


def test_a_url_of_your_own_is_kept(on_moto, tmp_path, moto_server) -> None:  # noqa: F811 - fixtures
    deployer = make_deployer(tmp_path)
    runs: list[dict[str, str]] = []
    deployer.run_chalice = _counting(runs)
    own = {"BACKDROP_APP_URL": "https://photos.example.com"}
    outputs = deployer.deploy(email="", model="stability-inpaint", max_concurrency=8, settings=dict(own))
    assert outputs["AppUrl"] == APP_URL and [r["BACKDROP_APP_URL"] for r in runs] == ["https://photos.example.com"]
    assert f"BACKDROP_APP_URL stays https://photos.example.com (your own); the web app answers at {APP_URL}" in (
        deployer.said
    )
    deployer.teardown()


def test_no_webapp_deploys_the_api_only(on_moto, tmp_path, moto_server) -> None:  # noqa: F811 - fixtures
    deployer = make_deployer(tmp_path)
    runs: list[dict[str, str]] = []
    deployer.run_chalice = _counting(runs)
    outputs = deployer.deploy(email="", model="stability-inpaint", max_concurrency=8, settings={}, with_webapp=False)
    assert "AppUrl" not in outputs and len(runs) == 1 and deployer.webapp_parameters == []
    cfn = _client("cloudformation", moto_server)
    live = [s["StackName"] for s in cfn.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"]
    assert stack_name("dev", "webapp") not in live
    deployer.teardown()


def test_the_source_zip_is_what_the_task_runs_and_the_same_bytes_for_the_same_code(tmp_path: Path) -> None:
    data = webapp.source_zip()
    assert webapp.source_zip() == data  # deterministic: a redeploy of the same code changes no stack
    names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    template = templates.load("webapp")
    command = " ".join(template["Resources"]["App"]["Properties"]["PrimaryContainer"]["Command"])
    # what the task's command runs and installs is in the zip
    run = re.search(r"streamlit run (\S+)", command)
    assert run and run.group(1) in names and "pyproject.toml" in names and ".streamlit/config.toml" in names
    assert "chalicelib/core/contracts.py" in names and "chalicelib/models/models.json" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert "frontend" in _extras(names, data)
    # its key fits the template's parameter, and the task role may read it (and nothing else)
    key = webapp.source_key(data)
    assert re.fullmatch(template["Parameters"]["SourceKey"]["AllowedPattern"], key)
    (statement,) = template["Resources"]["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "s3:GetObject" and statement["Resource"]["Fn::Sub"].endswith(
        f"/{webapp.SOURCE_PREFIX}*"
    )
    # a changed file is a new key: the service is updated and its task fetches the new code
    copy = tmp_path / "checkout"
    for name in names:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes(zipfile.ZipFile(io.BytesIO(data)).read(name))
    assert webapp.source_zip(copy) == data
    (copy / "frontend" / "streamlit_app.py").write_text("# changed\n")
    assert webapp.source_key(webapp.source_zip(copy)) != key


def _extras(names: set[str], data: bytes) -> dict[str, Any]:
    import tomllib

    project = tomllib.loads(zipfile.ZipFile(io.BytesIO(data)).read("pyproject.toml").decode())["project"]
    return dict(project["optional-dependencies"])


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("backdrop-dev-webapp.ecs.us-east-1.on.aws", APP_URL),
        (APP_URL + "/", APP_URL),
        ("http://backdrop-dev-webapp.ecs.us-east-1.on.aws", APP_URL),
    ],
)
def test_the_app_url_is_https_whatever_form_the_endpoint_takes(endpoint: str, url: str) -> None:
    assert webapp.app_url(endpoint) == url


def test_the_deploy_prints_the_web_app_first(monkeypatch, capsys, tmp_path) -> None:
    from backend import deploy

    def fake_deploy(self: Any, **kwargs: Any) -> dict[str, str]:
        assert kwargs["with_webapp"] is True
        return {
            "AppUrl": APP_URL,
            "ApiUrl": "https://x.execute-api.us-east-1.amazonaws.com/api/",
            "UserPoolId": "p",
            "UserPoolClientId": "c",
            "BucketName": "b",
        }

    monkeypatch.setattr(deploy.Deployer, "deploy", fake_deploy)
    monkeypatch.setattr(deploy.Deployer, "__post_init__", lambda self: setattr(self, "project_dir", tmp_path))
    monkeypatch.setattr(deployment_settings, "effective", lambda *a: {})
    assert deploy.main(["deploy", "--stage", "dev", "--region", "us-east-1"]) == 0
    out = capsys.readouterr().out
    assert f"  Web app:      {APP_URL}" in out and out.index("Web app") < out.index("API:")
