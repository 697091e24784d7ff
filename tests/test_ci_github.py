"""`postrefresh ci github`: the workflow it writes, actionlint's verdict on it, and its steps run locally."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import FAST_CONFIG, SEEDS, CliResult
from tests.simulator_fixtures import API_KEY
from worker.api.http import package_version
from worker.outputs.workflow import WORKFLOW_PATH, WorkflowOptions, workflow_text
from worker.simulator.server import YouTubeSimulator

pytestmark = pytest.mark.timeout(120)
Cli = Callable[..., CliResult]
BIN = Path(sys.executable).parent
ACTIONLINT = BIN / "actionlint"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
RUN_ID = "4242"
# The option combinations the command accepts, and the permissions each must ask for, exactly.
COMBINATIONS = {
    "push": ({}, {"contents": "write"}),
    "pull-request": ({"pull_request": True}, {"contents": "write", "pull-requests": "write"}),
    "deploy": ({"deploy_workflow": "pages.yml"}, {"contents": "write", "actions": "write"}),
}
FLAGS = {"push": [], "pull-request": ["--pull-request"], "deploy": ["--deploy-workflow", "pages.yml"]}


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(cwd), "-c", "user.name=Owner", "-c", "user.email=o@example.com",
                             *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"git {args}: {result.stderr}"
    return result.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git work tree holding a copy of the sample site at its top."""
    target = tmp_path / "repo"
    shutil.copytree(SEEDS, target)
    git(target, "init", "-q", "-b", "main")
    return target


def workflow(text: str) -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load(text)
    data["on"] = data.pop(True)  # YAML 1.1 reads the key `on` as a boolean
    return data


def test_writes_the_workflow_at_the_top_of_the_repository_and_says_what_is_left(cli: Cli, repo: Path) -> None:
    result = cli("ci", "github", "--site", str(repo))
    assert result.code == 0, result.err
    text = (repo / WORKFLOW_PATH).read_text()
    assert f'POSTREFRESH_INSTALL: "postrefresh=={package_version()}"' in text
    assert "named YOUTUBE_API_KEY" in result.out
    assert "Workflow permissions" in result.out
    assert f"wrote {repo / WORKFLOW_PATH}" in result.out


def test_a_site_in_a_folder_of_the_repository_is_named_by_that_folder(cli: Cli, tmp_path: Path) -> None:
    top = tmp_path / "repo"
    shutil.copytree(SEEDS, top / "blog")
    git(top, "init", "-q", "-b", "main")
    result = cli("ci", "github", "--site", str(top / "blog"))
    assert result.code == 0, result.err
    data = workflow((top / WORKFLOW_PATH).read_text())
    job = data["jobs"]["refresh"]
    assert job["env"]["POSTREFRESH_SITE"] == "blog"
    cached = [step["with"]["path"] for step in job["steps"] if "actions/cache" in step.get("uses", "")]
    assert cached == ["blog/.postrefresh", "blog/.postrefresh"]
    assert not (top / "blog" / ".github").exists()


def test_an_existing_workflow_is_kept_without_force_and_replaced_with_it(cli: Cli, repo: Path) -> None:
    target = repo / WORKFLOW_PATH
    target.parent.mkdir(parents=True)
    target.write_text("# the owner's own workflow\n")
    refused = cli("ci", "github", "--site", str(repo), "--pull-request")
    assert refused.code == 2
    assert refused.err.count("\n") == 1 and "--force" in refused.err and str(target) in refused.err
    assert target.read_text() == "# the owner's own workflow\n"
    forced = cli("ci", "github", "--site", str(repo), "--pull-request", "--force")
    assert forced.code == 0, forced.err
    assert "pull-requests: write" in target.read_text()


@pytest.mark.parametrize(("argv", "says"), [
    (["--cron", "daily"], "five cron fields"),
    (["--cron", "17 5 * *"], "five cron fields"),
    (["--pull-request", "--deploy-workflow", "pages.yml"], "--deploy-workflow is for pushes"),
    (["--install-spec", "postrefresh==${{ github.sha }}"], "--install-spec"),
])
def test_a_bad_option_is_one_line_and_writes_nothing(cli: Cli, repo: Path, argv: list[str],
                                                     says: str) -> None:
    result = cli("ci", "github", "--site", str(repo), *argv)
    assert result.code == 2
    assert result.err.count("\n") == 1 and says in result.err
    assert not (repo / ".github").exists()


def test_a_folder_outside_any_git_work_tree_is_refused(cli: Cli, tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(SEEDS, site)
    result = cli("ci", "github", "--site", str(site))
    assert result.code == 2
    assert result.err.count("\n") == 1 and "is not in a git work tree" in result.err
    assert not (site / ".github").exists()


def test_the_same_options_give_the_same_bytes() -> None:
    options = WorkflowOptions(install_spec="postrefresh==1.2.3", deploy_workflow="pages.yml")
    assert workflow_text(options) == workflow_text(WorkflowOptions(install_spec="postrefresh==1.2.3",
                                                                   deploy_workflow="pages.yml"))


@pytest.mark.parametrize("name", COMBINATIONS)
def test_the_workflow_has_the_promised_keys(name: str) -> None:
    extra, permissions = COMBINATIONS[name]
    text = workflow_text(WorkflowOptions(install_spec="postrefresh==1.2.3", cron="5 4 * * 1", **extra))
    data = workflow(text)
    assert data["on"] == {"schedule": [{"cron": "5 4 * * 1"}], "workflow_dispatch": None}
    assert data["concurrency"] == {"group": "postrefresh", "cancel-in-progress": False}
    assert data["permissions"] == permissions
    steps = data["jobs"]["refresh"]["steps"]
    uses = [step.get("uses", "").split("@")[0] for step in steps]
    assert uses.index("actions/cache/restore") < uses.index("actions/cache/save")
    restore, save = (step for step in steps if step.get("uses", "").startswith("actions/cache/"))
    assert restore["with"]["path"] == save["with"]["path"] == ".postrefresh"
    assert restore["with"]["key"] == save["with"]["key"] == (
        "postrefresh-state-${{ github.run_id }}-${{ github.run_attempt }}")
    assert restore["with"]["restore-keys"] == "postrefresh-state-"
    assert save["if"] == "${{ !cancelled() && steps.landed.outputs.landed == 'true' }}"
    assert any("upload-artifact" in step.get("uses", "") for step in steps)
    # The key reaches one step, through its env, from secrets: never a command line or the job env.
    assert text.count("secrets.") == 1
    keyed = [step for step in steps if "YOUTUBE_API_KEY" in step.get("env", {})]
    assert [step["env"]["YOUTUBE_API_KEY"] for step in keyed] == ["${{ secrets.YOUTUBE_API_KEY }}"]
    assert "postrefresh run --commit" in keyed[0]["run"]
    assert not any("YOUTUBE_API_KEY" in step.get("run", "") or "secrets" in step.get("run", "")
                   for step in steps)


@pytest.mark.parametrize("name", COMBINATIONS)
def test_actionlint_accepts_the_workflow(name: str, tmp_path: Path) -> None:
    extra, _ = COMBINATIONS[name]
    options = WorkflowOptions(install_spec="git+https://github.com/example/postrefresh@v1.2.3",
                              cron="*/30 6-20 * * 1-5", site="blog", **extra)
    path = tmp_path / "postrefresh.yml"
    path.write_text(workflow_text(options))
    result = subprocess.run([str(ACTIONLINT), "-no-color", str(path)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_actionlint_here_flags_an_action_on_a_deprecated_runtime(tmp_path: Path) -> None:
    # Proves the check above is not vacuous: this actionlint knows which majors are current.
    path = tmp_path / "old.yml"
    path.write_text("on: workflow_dispatch\njobs:\n  x:\n    runs-on: ubuntu-latest\n"
                    "    steps:\n      - uses: actions/checkout@v4\n")
    result = subprocess.run([str(ACTIONLINT), "-no-color", str(path)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 1 and "deprecated" in result.stdout


class LocalRunner:
    """Runs a workflow's `run:` steps in a clone of a bare `origin`, as the runner would.

    `uses:` steps are GitHub's own (checkout is the clone; the cache and the upload are
    checked by the keys test); the install step is replaced by the venv's postrefresh;
    `gh` is a stub that records its argv and whether it got a token.
    """

    def __init__(self, tmp_path: Path, sim: YouTubeSimulator, flags: list[str]) -> None:
        self.origin = tmp_path / "origin.git"
        self.clone = tmp_path / "clone"
        self.temp = tmp_path / "runner-temp"
        self.gh_log = tmp_path / "gh.log"
        self.outputs = tmp_path / "github-output"
        self.logs: dict[str, str] = {}
        seed = tmp_path / "seed"
        shutil.copytree(SEEDS, seed)
        git(seed, "init", "-q", "-b", "main")
        written = subprocess.run([str(BIN / "postrefresh"), "ci", "github", "--site", str(seed), *flags],
                                 capture_output=True, text=True, timeout=60, check=False)
        assert written.returncode == 0, written.stderr
        git(seed, "add", "-A")
        git(seed, "commit", "-q", "-m", "the site, and its workflow")
        git(tmp_path, "clone", "-q", "--bare", str(seed), str(self.origin))
        git(tmp_path, "clone", "-q", str(self.origin), str(self.clone))
        self.text = (self.clone / WORKFLOW_PATH).read_text()
        self.start = git(self.clone, "rev-parse", "HEAD").strip()
        stubs = tmp_path / "stubs"
        stubs.mkdir()
        (stubs / "gh").write_text('#!/bin/sh\nprintf "token=%s" "$GH_TOKEN" >> "$GH_LOG"\n'
                                  'printf " %s" "$@" >> "$GH_LOG"\necho >> "$GH_LOG"\n')
        (stubs / "gh").chmod(0o755)
        self.temp.mkdir()
        (tmp_path / "fast.toml").write_text(FAST_CONFIG)
        self.context = {"secrets.YOUTUBE_API_KEY": API_KEY, "github.token": "local-token",
                        "runner.temp": str(self.temp)}
        self.env = {"PATH": f"{stubs}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}",
                    "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1", "GH_LOG": str(self.gh_log),
                    "GITHUB_SHA": self.start, "GITHUB_REF_NAME": "main", "GITHUB_RUN_ID": RUN_ID,
                    "GITHUB_RUN_ATTEMPT": "1",
                    "RUNNER_TEMP": str(self.temp), "GITHUB_OUTPUT": str(self.outputs),
                    "POSTREFRESH_CONFIG": str(tmp_path / "fast.toml"),
                    "YOUTUBE_API_URL": f"{sim.url}/youtube/v3", "YOUTUBE_THUMBNAIL_URL": sim.url}

    def run_steps(self) -> dict[str, int]:
        """Run the `run:` steps in order (bash -eo pipefail, as GitHub does): name -> exit code.

        After a failed step only the steps marked `if: !cancelled()` run, as on GitHub.
        """
        job = workflow(self.text)["jobs"]["refresh"]
        codes: dict[str, int] = {}
        for step in job["steps"]:
            env = {**job["env"], **step.get("env", {})}
            if "run" not in step or "POSTREFRESH_INSTALL" in env:
                continue
            if any(codes.values()) and "!cancelled()" not in step.get("if", ""):
                continue
            values = {name: EXPRESSION.sub(lambda m: self.context[m[1]], value)
                      for name, value in env.items()}
            assert "${{" not in step["run"], "expressions belong in env, not in a script"
            result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                                    cwd=self.clone, env={**self.env, **values}, capture_output=True,
                                    text=True, timeout=90, check=False)
            codes[step["name"]] = result.returncode
            self.logs[step["name"]] = result.stdout + result.stderr
        return codes

    def run_all(self) -> list[str]:
        """Run the steps, each of which must succeed; the names of those run."""
        codes = self.run_steps()
        assert not any(codes.values()), {name: self.logs[name] for name, code in codes.items() if code}
        return list(codes)

    def state_saved(self) -> bool:
        """Whether the cache save step would run: its `if:` reads the landed step's output."""
        return "landed=true" in self.outputs.read_text() if self.outputs.exists() else False

    def gh_calls(self) -> list[str]:
        return self.gh_log.read_text().splitlines() if self.gh_log.exists() else []

    def origin_changes(self, ref: str) -> list[str]:
        """The files the commit at `ref` in origin changed against the commit the run started from."""
        return git(self.origin, "diff", "--name-only", self.start, ref).split()


def assert_refreshed_posts(changed: list[str], runner: LocalRunner) -> None:
    assert any(path.startswith("_posts/") for path in changed), changed
    assert not any(".postrefresh" in path for path in changed)  # the state goes to the cache, not git
    assert (runner.temp / "postrefresh-report.html").read_text().lstrip().startswith("<!")


def test_the_push_workflows_steps_push_the_refreshed_posts_and_write_the_report(
        tmp_path: Path, sim: YouTubeSimulator) -> None:
    runner = LocalRunner(tmp_path, sim, FLAGS["push"])
    ran = runner.run_all()
    assert ran == ["Configure git", "Refresh, commit and push",
                   "Check that what the refresh wrote reached the remote", "Write the report page"]
    assert runner.state_saved()
    assert_refreshed_posts(runner.origin_changes("main"), runner)
    subject = git(runner.origin, "log", "-1", "--format=%s%n%an <%ae>", "main").splitlines()
    assert subject[0].startswith("postrefresh: ")
    assert subject[1] == "github-actions[bot] <41898282+github-actions[bot]@users.noreply.github.com>"
    assert runner.gh_calls() == []


def test_the_pull_request_workflows_steps_push_a_branch_and_open_a_pull_request(
        tmp_path: Path, sim: YouTubeSimulator) -> None:
    runner = LocalRunner(tmp_path, sim, FLAGS["pull-request"])
    runner.run_all()
    assert runner.state_saved()
    assert git(runner.origin, "rev-parse", "main").strip() == runner.start  # main is left to the merge
    assert_refreshed_posts(runner.origin_changes(f"postrefresh/{RUN_ID}-1"), runner)
    assert runner.gh_calls() == ["token=local-token pr create --base main --fill"]


def test_the_deploy_workflows_steps_start_the_deploy_after_the_push(tmp_path: Path,
                                                                   sim: YouTubeSimulator) -> None:
    runner = LocalRunner(tmp_path, sim, FLAGS["deploy"])
    ran = runner.run_all()
    assert ran[-1].startswith("Start the deploy workflow")
    assert_refreshed_posts(runner.origin_changes("main"), runner)
    assert runner.gh_calls() == ["token=local-token workflow run pages.yml --ref main"]


def test_a_run_that_pushed_nothing_starts_no_deploy_and_opens_no_pull_request(
        tmp_path: Path, sim: YouTubeSimulator) -> None:
    for name in ("deploy", "pull-request"):
        runner = LocalRunner(tmp_path / name, sim, FLAGS[name])
        runner.context["secrets.YOUTUBE_API_KEY"] = "not-the-key"  # every call refused: nothing written
        codes = runner.run_steps()
        refresh = next(step for step in codes if step.startswith("Refresh"))
        assert codes[refresh] == 2, runner.logs[refresh]
        assert [code for step, code in codes.items() if step != refresh] == [0] * (len(codes) - 1)
        assert runner.gh_calls() == []
        assert git(runner.origin, "rev-parse", "main").strip() == runner.start
        assert runner.state_saved()  # nothing was written, so the state still matches the remote


def test_a_persons_push_meanwhile_is_kept_and_the_runs_state_is_not_saved(
        tmp_path: Path, sim: YouTubeSimulator) -> None:
    runner = LocalRunner(tmp_path, sim, FLAGS["deploy"])
    person = tmp_path / "person"
    git(tmp_path, "clone", "-q", str(runner.origin), str(person))
    (person / "about.md").write_text("an edit made while the workflow runs\n")
    git(person, "add", "about.md")
    git(person, "commit", "-q", "-m", "a person's edit")
    git(person, "push", "-q")
    pushed = git(person, "rev-parse", "HEAD").strip()
    codes = runner.run_steps()
    assert codes["Refresh, commit and push"] == 75, runner.logs["Refresh, commit and push"]
    assert "git push failed" in runner.logs["Refresh, commit and push"]
    assert git(runner.origin, "rev-parse", "main").strip() == pushed  # never overwritten
    assert not runner.state_saved()
    assert runner.gh_calls() == []  # nothing of this run reached the remote: no deploy
    assert (runner.temp / "postrefresh-report.html").exists()
