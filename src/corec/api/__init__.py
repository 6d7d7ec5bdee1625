"""CoreC's operator surface: the REST API, the WebSocket stream, the dashboard and
the Prometheus metrics, served by the ``api`` plugin. It reaches the other plugins only
through the bus (request endpoints and channels): ``corec.api`` imports ``corec.core``
and ``corec.messages``, never a plugin."""
