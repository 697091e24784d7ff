"""The GitHub Actions workflow that refreshes a site on a schedule, as text (pure: no I/O).

The text is a template, not a PyYAML dump, so that it can carry comments for the owner; every
value the caller gives is written as a JSON string (a valid YAML double-quoted scalar) and
reaches the shell only through an environment variable, never spliced into a `run:` script.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass

from worker.errors import ConfigError

WORKFLOW_PATH = ".github/workflows/postrefresh.yml"
DEFAULT_CRON = "17 5 * * *"  # daily, at an odd minute: on the hour GitHub's scheduler is busiest
PYTHON_VERSION = "3.12"
REPORT_ARTIFACT = "postrefresh-report"
# The current majors (node24 runtimes); actionlint flags the older ones as deprecated.
CHECKOUT = "actions/checkout@v7"
SETUP_PYTHON = "actions/setup-python@v7"
CACHE_RESTORE = "actions/cache/restore@v6"
CACHE_SAVE = "actions/cache/save@v6"
UPLOAD_ARTIFACT = "actions/upload-artifact@v7"
BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"
_CRON_FIELD = re.compile(r"[0-9A-Za-z*,/-]+")


@dataclass(frozen=True)
class WorkflowOptions:
    """What `postrefresh ci github` was asked for; `site` is the site's folder in the repository."""

    install_spec: str
    cron: str = DEFAULT_CRON
    site: str = "."
    pull_request: bool = False
    deploy_workflow: str | None = None


def permissions(options: WorkflowOptions) -> dict[str, str]:
    """The GITHUB_TOKEN permissions the workflow asks for: the least its steps need."""
    wanted = {"contents": "write"}  # push the refreshed posts (or the pull request's branch)
    if options.pull_request:
        wanted["pull-requests"] = "write"  # gh pr create
    if options.deploy_workflow is not None:
        wanted["actions"] = "write"  # gh workflow run: the workflow-dispatch API needs it
    return wanted


def owner_steps(options: WorkflowOptions) -> tuple[str, ...]:
    """What is left to the repository's owner on GitHub once the workflow is written."""
    steps = ["add the API key as a secret: Settings → Secrets and variables → Actions → "
             "New repository secret, named YOUTUBE_API_KEY"]
    if options.pull_request:
        steps.append("let the workflow open pull requests: Settings → Actions → General → Workflow "
                     "permissions → tick \"Allow GitHub Actions to create and approve pull requests\"")
    else:
        steps.append("let the workflow push: nothing to do in Settings → Actions → General → Workflow "
                     "permissions (that is only the default for workflows that ask for nothing; this "
                     "one asks for contents: write), unless a branch protection rule or ruleset "
                     "blocks pushes to the branch: then let github-actions push there, or rewrite "
                     "the workflow with --pull-request")
    if options.deploy_workflow is not None:
        steps.append(f"check that {options.deploy_workflow} has `on: workflow_dispatch`, "
                     "or the dispatch after each push fails")
    return tuple(steps)


def workflow_text(options: WorkflowOptions) -> str:
    """The workflow file's text: the same options always give the same bytes."""
    _check(options)
    cache = f"{options.site}/.postrefresh" if options.site != "." else ".postrefresh"
    header = "\n".join(textwrap.fill(step, 96, initial_indent=f"#   {n}. ", subsequent_indent="#      ",
                                     break_long_words=False, break_on_hyphens=False)
                       for n, step in enumerate(owner_steps(options), 1))
    perms = "\n".join(f"  {name}: {access}" for name, access in permissions(options).items())
    publish = _PULL_REQUEST if options.pull_request else _PUSH
    deploy = _DEPLOY.format(name=_quoted(options.deploy_workflow)) if options.deploy_workflow else ""
    return _TEMPLATE.format(
        header=header, cron=_quoted(options.cron), permissions=perms, site=_quoted(options.site),
        install=_quoted(options.install_spec), cache=_quoted(cache), publish=publish, deploy=deploy,
        checkout=CHECKOUT, setup_python=SETUP_PYTHON, python=_quoted(PYTHON_VERSION),
        restore=CACHE_RESTORE, save=CACHE_SAVE, upload=UPLOAD_ARTIFACT, artifact=REPORT_ARTIFACT,
        bot_name=BOT_NAME, bot_email=BOT_EMAIL)


def _check(options: WorkflowOptions) -> None:
    fields = options.cron.split()
    if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(field) for field in fields):
        raise ConfigError(f"--cron {options.cron!r}: must be five cron fields (minute hour day month "
                          f"weekday, in UTC), e.g. {DEFAULT_CRON!r}")
    if options.pull_request and options.deploy_workflow is not None:
        raise ConfigError("--deploy-workflow is for pushes: with --pull-request the refresh reaches the "
                          "branch when a person merges it, and that merge starts the deploy itself")
    named = {"--install-spec": options.install_spec, "--deploy-workflow": options.deploy_workflow,
             "the site's folder": options.site}
    for flag, value in named.items():
        if value is not None and (not value.strip() or "${{" in value or not value.isprintable()):
            raise ConfigError(f"{flag} {value!r}: must be one printable line without `${{{{`")


def _quoted(value: str | None) -> str:
    return json.dumps(value, ensure_ascii=False)


_TEMPLATE = """\
# Refreshes the YouTube statistics of this site's video posts on a schedule.
# Written by `postrefresh ci github`; rerun it with --force to rewrite this file.
# Left to you on GitHub:
{header}
name: postrefresh

on:
  schedule:
    - cron: {cron}  # UTC
  workflow_dispatch:

# One run at a time: a run started while another runs waits for it instead of racing it
# (GitHub keeps one waiting run; a newer one replaces it).
concurrency:
  group: postrefresh
  cancel-in-progress: false

# The least this workflow needs, for the GITHUB_TOKEN its steps use.
permissions:
{permissions}

jobs:
  refresh:
    runs-on: ubuntu-latest
    timeout-minutes: 60
    env:
      POSTREFRESH_SITE: {site}
    steps:
      - uses: {checkout}
      - uses: {setup_python}
        with:
          python-version: {python}
      - name: Install postrefresh
        env:
          POSTREFRESH_INSTALL: {install}
        run: python -m pip install "$POSTREFRESH_INSTALL"
      # The state database (.postrefresh/: absence counts, thumbnail validators, the quota
      # ledger) is not in git. Without it every run would start from nothing, and no video
      # would ever reach "unavailable". A cache entry is never overwritten, so each run saves
      # its state under a key of its own, and the next run restores the newest entry whose key
      # starts with restore-keys.
      - name: Restore the state database
        uses: {restore}
        with:
          path: {cache}
          key: postrefresh-state-${{{{ github.run_id }}}}-${{{{ github.run_attempt }}}}
          restore-keys: postrefresh-state-
      - name: Configure git
        run: |
          git config user.name "{bot_name}"
          git config user.email "{bot_email}"
{publish}      # The state describes the files the run wrote (thumbnail validators above all): it is
      # kept only when those files reached the remote, or the next run, checking out the
      # remote, would trust it for files it does not have. It is kept after a failed run too
      # (a bad post, the quota) whose commit did reach the remote.
      - name: Check that what the refresh wrote reached the remote
        id: landed
        if: ${{{{ !cancelled() }}}}
        run: |
          uncommitted="$(git status --porcelain --untracked-files=no)"
          if [ -z "$uncommitted" ] && [ -n "$(git branch -r --contains HEAD)" ]; then
            echo "landed=true" >> "$GITHUB_OUTPUT"
          else
            echo "::warning::the refreshed files did not reach the remote: this run's state is not saved"
          fi
      - name: Save the state database
        if: ${{{{ !cancelled() && steps.landed.outputs.landed == 'true' }}}}
        uses: {save}
        with:
          path: {cache}
          key: postrefresh-state-${{{{ github.run_id }}}}-${{{{ github.run_attempt }}}}
      - name: Write the report page
        if: ${{{{ !cancelled() }}}}
        run: postrefresh report --out "$RUNNER_TEMP/postrefresh-report.html"
      - name: Upload the report page
        if: ${{{{ !cancelled() }}}}
        uses: {upload}
        with:
          name: {artifact}
          path: ${{{{ runner.temp }}}}/postrefresh-report.html
{deploy}"""

_PUSH = """\
      - name: Refresh, commit and push
        env:
          YOUTUBE_API_KEY: ${{ secrets.YOUTUBE_API_KEY }}
        run: postrefresh run --commit --push
"""

_PULL_REQUEST = """\
      - name: Refresh and commit on a new branch
        env:
          YOUTUBE_API_KEY: ${{ secrets.YOUTUBE_API_KEY }}
        run: |
          git switch -c "postrefresh/$GITHUB_RUN_ID-$GITHUB_RUN_ATTEMPT"  # a rerun gets a branch of its own
          postrefresh run --commit
      - name: Push the branch and open a pull request
        if: ${{ !cancelled() }}
        env:
          GH_TOKEN: ${{ github.token }}
        run: |
          if [ "$(git rev-parse HEAD)" = "$GITHUB_SHA" ]; then
            echo "postrefresh committed nothing: no pull request"
            exit 0
          fi
          git push --set-upstream origin HEAD
          gh pr create --base "$GITHUB_REF_NAME" --fill
"""

# A push made with GITHUB_TOKEN starts no other workflow; a workflow_dispatch event is the exception.
_DEPLOY = """\
      - name: Start the deploy workflow (a push made with GITHUB_TOKEN starts none)
        if: ${{{{ !cancelled() }}}}
        env:
          GH_TOKEN: ${{{{ github.token }}}}
          DEPLOY_WORKFLOW: {name}
        run: |
          head="$(git rev-parse HEAD)"
          if [ "$head" = "$GITHUB_SHA" ] || [ "$head" != "$(git rev-parse '@{{u}}')" ]; then
            echo "no new commit was pushed: the deploy is not started"
            exit 0
          fi
          gh workflow run "$DEPLOY_WORKFLOW" --ref "$GITHUB_REF_NAME"
"""
