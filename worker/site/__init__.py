"""The site on disk, the only code touching its files: posts, files, state, history, git."""
