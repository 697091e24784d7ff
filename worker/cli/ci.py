"""`postrefresh ci github`: write the workflow that refreshes the site on GitHub Actions."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from worker.api.http import package_version
from worker.cli.common import settings_from
from worker.errors import EXIT_OK, ConfigError
from worker.outputs.workflow import DEFAULT_CRON, WORKFLOW_PATH, WorkflowOptions, owner_steps, workflow_text
from worker.site.files import write_atomic

GITHUB_DESCRIPTION = f"""Write {WORKFLOW_PATH} into the git repository that holds the site: a
daily scheduled (and manual) refresh that commits and pushes the changed posts, keeps the
state database in the Actions cache and uploads the report page. It then says the steps left
to you on GitHub. The site must be in a git work tree (the workflow goes at its top); an
existing workflow file is kept unless --force. Exit codes: 0 written, 2 refused."""


def add_ci_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `postrefresh ci github`."""
    ci = sub.add_parser("ci", help="write a CI workflow that refreshes the site on a schedule",
                        description="Write a CI workflow that refreshes the site on a schedule.")
    providers = ci.add_subparsers(dest="provider", required=True, title="providers", metavar="PROVIDER")
    github = providers.add_parser("github", parents=[common], help="GitHub Actions",
                                  description=GITHUB_DESCRIPTION)
    github.add_argument("--cron", default=DEFAULT_CRON,
                        help=f"when it runs, five cron fields in UTC (default {DEFAULT_CRON!r})")
    github.add_argument("--pull-request", action="store_true",
                        help="commit to a new branch and open a pull request instead of pushing")
    github.add_argument("--deploy-workflow", metavar="NAME",
                        help="after a push, start this workflow (e.g. pages.yml) with workflow_dispatch: "
                             "a push made with GITHUB_TOKEN starts no workflow itself")
    github.add_argument("--install-spec", metavar="SPEC",
                        help="what pip installs (default: postrefresh==THIS VERSION), "
                             "e.g. git+https://github.com/OWNER/postrefresh@TAG")
    github.add_argument("--force", action="store_true", help="overwrite an existing workflow file")
    github.set_defaults(handler=cmd_ci_github)


def cmd_ci_github(args: argparse.Namespace) -> int:
    """`postrefresh ci github`."""
    top, folder = _work_tree(settings_from(args).require_site())
    options = WorkflowOptions(install_spec=args.install_spec or _pinned(), cron=args.cron,
                              site=folder, pull_request=args.pull_request,
                              deploy_workflow=args.deploy_workflow)
    text = workflow_text(options)
    target = top / WORKFLOW_PATH
    if target.exists() and not args.force:
        raise ConfigError(f"{target} exists: pass --force to overwrite it (edits made to it are lost)")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, text.encode())
    print(f"wrote {target}")
    print("left to you on GitHub:")
    for number, step in enumerate(owner_steps(options), 1):
        print(f"  {number}. {step}")
    print(f"then commit and push {WORKFLOW_PATH}; Actions → postrefresh → Run workflow tries it now")
    return EXIT_OK


def _pinned() -> str:
    """`postrefresh==VERSION` for this release; a local or unknown version cannot be pinned."""
    version = package_version()
    if "+" in version:
        raise ConfigError(f"this postrefresh ({version}) is not a released version pip can install: "
                          "pass --install-spec, e.g. git+https://github.com/OWNER/postrefresh@TAG")
    return f"postrefresh=={version}"


def _work_tree(site: Path) -> tuple[Path, str]:
    """The top of the git work tree holding `site`, and the site's folder in it ("." at the top)."""
    git = shutil.which("git")
    if git is None:
        raise ConfigError("git is not installed: install it (apt-get install git); the workflow goes "
                          "at the top of the site's git repository")
    result = subprocess.run([git, "-C", str(site), "rev-parse", "--show-toplevel", "--show-prefix"],
                            capture_output=True, check=False, timeout=60)
    lines = os.fsdecode(result.stdout).splitlines()
    if result.returncode != 0 or len(lines) < 2 or not lines[0]:
        raise ConfigError(f"{site} is not in a git work tree: the workflow goes at the top of the "
                          "site's repository; run this in its clone (or `git init` there first)")
    return Path(lines[0]), lines[1].rstrip("/") or "."
