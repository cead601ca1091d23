"""``mountfs ui``: a read-only local web page of the store's catalog (``app.create_app``)."""
