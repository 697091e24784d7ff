# One image for every postrefresh process: fetch/write/scan workers, beat, Flower and the
# demo simulator; docker-compose.yml picks the command. No secret is baked in: the API key,
# Flower's password and the rest come from the environment at run time (.env, see
# config/env.example).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Installed from a copy of the source that is deleted afterwards: every process runs what pip
# installed (a file missing from the package fails here, not on a user's host), and the working
# directory holds no source tree for `celery -A tasks` or `python -m` to import instead.
# seeds/ is part of that source: the package ships the sample site.
COPY pyproject.toml README.md /src/
COPY worker/ /src/worker/
COPY tasks/ /src/tasks/
COPY seeds/ /src/seeds/
# /site, owned by the runtime user, is the sample site that docker-compose's default `site`
# volume copies on first use, so the demo never edits the image's copy. uid 1000 is the usual
# first user on a host, so a bind-mounted site stays writable; see SITE_UID in
# config/env.example when it is not.
RUN pip install "/src[flower]" \
    && useradd --uid 1000 --user-group --no-create-home --shell /usr/sbin/nologin postrefresh \
    && cp -r /src/seeds /site \
    && chown -R postrefresh:postrefresh /site \
    && rm -rf /src

WORKDIR /app
USER postrefresh

# -E: send task events, so Flower and `postrefresh status` see tasks.
CMD ["celery", "-A", "tasks", "worker", "-Q", "fetch", "-c", "8", "-E", "--loglevel", "INFO"]
