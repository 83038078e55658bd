"""HTTP routes: thin wrappers over ``server.services``; ``create_app`` mounts every module here.

Each module has a ``router`` (an ``APIRouter``) or an ``install(app)`` function. Append a
new module to ``ROUTE_MODULES`` (one line) to have it mounted.
"""

ROUTE_MODULES: tuple[str, ...] = (
    "server.routes.datasets",
    "server.routes.submissions",
    "server.routes.picks",
    "server.routes.organizer",
    "server.routes.leaderboard",
    "server.routes.pages",
    "server.routes.site",
)
