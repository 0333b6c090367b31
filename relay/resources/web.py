"""GET / and /static/*: the relay-out web page, a static page with no build step.

The page is plain HTML, CSS and an ES module in ``relay/web``. Its asset
links carry a fingerprint of the file (``app.js?v=<sha256 prefix>``), so the
files can be cached for a year while the page itself is revalidated on every
visit: a deploy reaches every browser at once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import falcon

WEB = Path(__file__).resolve().parent.parent / "web"
PREFIX = "/static"
ASSETS = ("app.css", "app.js")

# Everything the page loads comes from this origin; logos arrive as blob: URLs
# because the API wants a bearer token, which an <img src> cannot send.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
YEAR = 365 * 24 * 3600


def fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def fingerprints(root: Path = WEB) -> dict[str, str]:
    """Each asset's fingerprint: read once at start, shared by the page and the assets."""
    return {name: fingerprint(root / name) for name in ASSETS}


class PageResource:
    """The page, with links to the current version of each asset."""

    auth_scope = None  # the page holds no data; the token it is given fetches that

    def __init__(self, versions: dict[str, str], root: Path = WEB):
        html = (root / "index.html").read_text(encoding="utf-8")
        for name, version in versions.items():
            link = f'"{PREFIX}/{name}"'
            if link not in html:
                raise RuntimeError(f"index.html does not link {PREFIX}/{name}")
            html = html.replace(link, f'"{PREFIX}/{name}?v={version}"')
        self._page = html.encode()

    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_HTML
        resp.data = self._page
        resp.cache_control = ["no-cache"]
        resp.set_header("Content-Security-Policy", CSP)
        resp.set_header("Referrer-Policy", "no-referrer")


class Assets(falcon.routing.StaticRoute):
    """Files under a prefix, with a Cache-Control that suits how they are linked.

    With ``versions`` (file name to fingerprint), only those files are served:
    a request that names the current fingerprint may be cached forever and any
    other must revalidate. Without it, every file under the directory is
    cacheable for ``max_age`` seconds.
    """

    auth_scope = None

    def __init__(
        self, prefix: str, directory: Path, *, versions: dict[str, str] | None = None, max_age=0
    ):
        super().__init__(prefix, str(directory))
        self._versions = versions
        self._max_age = max_age

    def __call__(self, req, resp, **kwargs):
        req.context.route = self._prefix + "{file}"  # one metrics label for every file
        if self._versions is None:
            super().__call__(req, resp, **kwargs)
            resp.cache_control = ["public", f"max-age={self._max_age}"]
            return
        name = req.path[len(self._prefix) :]
        if name not in self._versions:  # index.html, say, is served only as /
            raise falcon.HTTPNotFound()
        super().__call__(req, resp, **kwargs)
        if req.get_param("v") == self._versions[name]:
            resp.cache_control = ["public", f"max-age={YEAR}", "immutable"]
        else:
            resp.cache_control = ["no-cache"]
