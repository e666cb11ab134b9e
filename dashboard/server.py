"""The dashboard's web server: the Streamlit app (dashboard/app.py) and the route that sets its cookies.

A Streamlit script cannot answer an HTTP request, so a cookie it writes from the page would be readable by
every script on that page. Here the server sets them, HttpOnly and SameSite=Strict (and Secure when the
page came over HTTPS): the page posts a one-time code (`SessionStore.handoff`) to `COOKIE_ROUTE`, and the
answer carries the cookie. `showroom dashboard` runs this module with `streamlit run`.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dashboard.sessions import COOKIE_ROUTE, process_store

APP_PATH = Path(__file__).resolve().parent / "app.py"
MAX_CODE_BYTES = 256


async def set_cookie(request: Request) -> Response:
    """POST a handoff code: 204 with its cookie set (or deleted, for a max-age of 0); 404 for a code
    that is unknown, used or expired."""
    body = await request.body()
    code = body[:MAX_CODE_BYTES].decode("ascii", errors="replace").strip()
    found = process_store().redeem(code)
    if found is None:
        return Response("unknown, used or expired code\n", status_code=404, media_type="text/plain")
    name, value, max_age = found
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    secure = request.url.scheme == "https"
    if max_age > 0:
        response.set_cookie(
            name, value, max_age=max_age, path="/", httponly=True, samesite="strict", secure=secure
        )
    else:
        response.delete_cookie(name, path="/", httponly=True, samesite="strict", secure=secure)
    return response


app = st.App(str(APP_PATH), routes=[Route(COOKIE_ROUTE, set_cookie, methods=["POST"])])
