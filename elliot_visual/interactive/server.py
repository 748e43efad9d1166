"""``elliot-visual serve``: the interactive refinement page (I-TVBPR's demo) as a small local web app.

FastAPI over uvicorn (the ``serve`` extra). The app is read-only: it holds one reloaded model and
its :class:`~elliot_visual.interactive.affinity.AffinityExplorer`, every endpoint is a GET, and the
state of a session (the refinement steps so far) lives in the page and travels in the query, so a
list is a pure function of (user, steps) and equals what the Python API returns for them.

Endpoints: ``/`` the page; ``/api/features``; ``/api/users``; ``/api/recommend?user=U&step=item:I
&step=feature:F&phi=..&phi_feature=..&k=..``; ``/images/{item}`` an item's image, looked up in the
run's own image folder by item id (no path from the request ever reaches the file system). An
unknown user, item or feature is a 404 with a JSON message naming it; a malformed number a 422.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import quote
from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.requests import Request

from elliot_visual.interactive.affinity import (DEFAULT_PHI, AffinityExplorer, MalformedStepError, UnknownNameError,
                                               parse_step)
from elliot_visual.interactive.trained_run import TrainedRun

PAGE = Path(__file__).with_name("page.html")
MAX_LISTED_USERS = 1000


def create_app(run: TrainedRun, explorer: AffinityExplorer) -> FastAPI:
    """The app serving ``run`` (docs endpoints off: they would load scripts from a CDN)."""
    app = FastAPI(title="elliot_visual affinity", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(UnknownNameError)
    async def unknown(request: Request, error: UnknownNameError) -> JSONResponse:  # noqa: ARG001
        return JSONResponse(status_code=404, content={"detail": str(error), "unknown": error.what,
                                                      "name": error.name})

    @app.exception_handler(MalformedStepError)
    async def malformed(request: Request, error: MalformedStepError) -> JSONResponse:  # noqa: ARG001
        return JSONResponse(status_code=422, content={"detail": str(error)})

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text(encoding="utf-8").replace("{{MODEL}}", _html_escape(run.name))

    @app.get("/api/features")
    def features() -> dict[str, Any]:
        return {"model": run.name, "features": explorer.names, "images": bool(run.images)}

    @app.get("/api/users")
    def users() -> dict[str, Any]:
        return {"users": explorer.user_ids[:MAX_LISTED_USERS], "total": len(explorer.user_ids)}

    @app.get("/api/recommend")
    def recommend(user: str, step: Annotated[list[str], Query()] = [],  # noqa: B006  (FastAPI's list query form)
                  phi: float = DEFAULT_PHI, phi_feature: float = DEFAULT_PHI,
                  k: Annotated[int, Query(ge=1, le=200)] = 10) -> dict[str, Any]:
        steps = [parse_step(s, phi if s.startswith("item:") else phi_feature) for s in step]
        p = explorer.refined(user, steps)
        items = explorer.recommend(p, k, user=user)
        row = explorer.user_index(user)
        train = run.data.train
        own = [explorer.item_ids[j] for j in train.indices[train.indptr[row]:train.indptr[row + 1]]]
        return {
            "user": user, "steps": [{"kind": s.kind, "target": s.target, "phi": s.phi} for s in steps],
            "affinity": [{"name": n, "value": float(v)} for n, v in zip(explorer.names, p)],
            "initial_affinity": [{"name": n, "value": float(v)} for n, v in zip(explorer.names, explorer.affinity(user))],
            "history": [{"item": i, "image": _image_url(run, i)} for i in own],
            "top_features": [{"name": n, "value": v} for n, v in explorer.top_features(p, 5)],
            "recommendations": [{"item": r.item_id, "distance": r.distance,
                                 "image": _image_url(run, r.item_id),
                                 "features": _item_features(explorer, r.item_id)} for r in items],
        }

    @app.get("/images/{item:path}")
    def image(item: str) -> FileResponse:
        path = run.images.get(item)
        if path is None or run.image_folder is None or path.resolve().parent != run.image_folder:
            raise UnknownNameError("image", item, sorted(run.images))
        return FileResponse(path)

    return app


def _image_url(run: TrainedRun, item: str) -> str | None:
    return f"/images/{quote(item, safe='')}" if item in run.images else None


def _item_features(explorer: AffinityExplorer, item: str, n: int = 3) -> list[dict[str, Any]]:
    row = explorer.features[explorer.item_index(item)]
    order = sorted(range(len(row)), key=lambda j: (-row[j], explorer.names[j]))[:n]
    return [{"name": explorer.names[j], "value": float(row[j])} for j in order]


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
