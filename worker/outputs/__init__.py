"""What a run leaves besides its posts: the site data for templates, metrics, a report."""
