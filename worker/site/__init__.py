"""The site on disk, the only code touching its files: posts, paths, files, state, history, git."""
