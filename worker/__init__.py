"""postrefresh keeps a Jekyll site's YouTube video posts fresh, editing their front matter in place.

Where each step of the pipeline (discover → fetch → edit → write) lives:

    discover  site/posts.py           the site's post paths, streamed; its video posts read, bad ones reported
    select    refresh/selection.py    which of them are due; bad posts and other posts counted
    fetch     api/youtube.py          one videos.list call per 50 ids (http.py, retry.py, fields.py beside it)
    edit      refresh/changes.py      what changes in one post (pure), made by frontmatter/editor.py in place
    write     refresh/write.py        under the post's lock, atomically (site/files.py), history kept
    run       refresh/run.py          one refresh of a site (refresh/pipeline.py runs the four steps
                                      for `postrefresh run`); tasks/jobs.py, one task per step

The Celery path takes the same steps: the scan selects with refresh/scheduler.py (freshness
tiers), the fetch workers share one call per 50 ids through shared/fetcher.py (shared/steps.py
beside it), and the write worker applies a batch of answers with refresh/apply.py. Every path
rule is in site/paths.py, the file format in frontmatter/ (document.py reads, editor.py edits),
and summary.json is outputs/site_data.py.

Packages import one way (`lint-imports` checks it): cli → outputs → shared → refresh → api → site →
frontmatter | settings → errors | video_id | times. simulator/ stands apart (the demo, tests and
bench use it); tasks/, beside this package, is the Celery layer over the same pieces.
"""
