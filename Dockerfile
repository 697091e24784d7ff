# One image for every postrefresh process: fetch/write/scan workers, beat, Flower and the
# demo simulator; docker-compose.yml picks the command. No secret is baked in: the API key,
# Flower's password and the rest come from the environment at run time (.env, see
# config/env.example).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies and code first, seeds last: editing the sample site does not reinstall.
COPY pyproject.toml README.md ./
COPY worker/ worker/
COPY tasks/ tasks/
RUN pip install ".[flower]" && rm -rf build ./*.egg-info

# The sample site, twice: /app/seeds as shipped, and /site (owned by the runtime user), which
# docker-compose's default `site` volume copies on first use so the demo never edits the image's
# copy. uid 1000 is the usual first user on a host, so a bind-mounted site stays writable; see
# SITE_UID in config/env.example when it is not.
COPY seeds/ seeds/
RUN useradd --uid 1000 --user-group --no-create-home --shell /usr/sbin/nologin postrefresh \
    && cp -r seeds /site \
    && chown -R postrefresh:postrefresh /site

USER postrefresh

# -E: send task events, so Flower and `postrefresh status` see tasks.
CMD ["celery", "-A", "tasks", "worker", "-Q", "fetch", "-c", "8", "-E", "--loglevel", "INFO"]
