"""`postrefresh report`: the site's history as one self-contained HTML page."""
