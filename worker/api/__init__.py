"""Remote services, httpx in and worker.errors out: YouTube's API, thumbnails, dislikes."""
