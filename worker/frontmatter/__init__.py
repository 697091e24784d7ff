"""The post file format, pure (no I/O): split a post, read its front matter, edit it."""
