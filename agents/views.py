"""Read API: `GET /users/{user_id}/` on the worker's web server, routed to the owning worker
(behind the bearer token of agents/web_access.py when one is set)."""

from __future__ import annotations

from faust.web import Request, Response, View

from churnstream.agents.context import WorkerContext
from churnstream.agents.web_access import authorized, web_token
from churnstream.model.user_record import UserRecord
from churnstream.model.user_view import user_view


def register(ctx: WorkerContext) -> None:
    app, table, config = ctx.app, ctx.table, ctx.detector.config.features
    token = web_token(ctx.settings)

    @app.page("/users/{user_id}/")
    class UserState(View):
        @authorized(token)  # outside the routing: an unauthorised request goes nowhere
        @app.table_route(table=table, match_info="user_id")
        async def get(self, request: Request, user_id: str) -> Response:
            raw = table.get(user_id.encode())
            if raw is None:
                return self.json({"error": "unknown_user", "user_id": user_id}, status=404)
            return self.json(user_view(UserRecord.from_bytes(user_id, raw, config)))
