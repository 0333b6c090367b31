"""GET /docs: an interactive view of /openapi.json, with every asset served by the app."""

from __future__ import annotations

from pathlib import Path

import falcon
import swagger_ui

from relay.resources.web import Assets

ASSETS = Path(swagger_ui.__file__).resolve().parent / "static"
PREFIX = "/docs/static"

PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>relay API</title>
  <link rel="stylesheet" href="{PREFIX}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{PREFIX}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
      persistAuthorization: false, tryItOutEnabled: true,
      validatorUrl: null  // no badge fetched from validator.swagger.io
    }});
  </script>
</body>
</html>
""".encode()


class DocsResource:
    auth_scope = None  # the contract is public; calling the API still needs a token

    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_HTML
        resp.data = PAGE


def assets() -> Assets:
    """Swagger UI's files, cacheable for a day (they change only with the package)."""
    return Assets(PREFIX, ASSETS, max_age=86400)
