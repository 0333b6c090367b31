"""The ceiling: a Falcon hello-world JSON route (and /health) under the same gunicorn settings."""

import falcon


class Hello:
    def on_get(self, req, resp):
        resp.media = {"code": 200, "message": "OK", "data": {"hello": "world"}}


app = falcon.App()
app.add_route("/health", Hello())
app.add_route("/hello", Hello())
