"""The operator's web console at /console: overview, runs, approval inbox, start forms.

Page shells and assets are served without a token (they hold no data: a browser's
navigation cannot send a bearer header); the page's script keeps the operator's token in
the tab's sessionStorage and fetches every view from /console/api as an HTML fragment,
with `Authorization: Bearer`, checked by the sidecar's BearerAuth and scope table like any
other route. No cookies, so no CSRF surface.
"""

from orchestrator_mcp.sidecar.console.headers import SecurityHeaders
from orchestrator_mcp.sidecar.console.routes import ConsoleParts, routes

__all__ = ["ConsoleParts", "SecurityHeaders", "routes"]
