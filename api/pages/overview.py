"""The themes overview (``/``): ranked by what needs attention, filtered, searched, sorted, paged.

The filters live in the query string (core/themes/overview.py reads and writes it), so a link keeps them
and the page works without JavaScript.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from api.deps import SessionDep
from api.pages.charts import sparkline_svg
from api.pages.common import PageUser, render
from core.models import Area, Owner
from core.themes.overview import overview
from core.themes.overview_filter import SORTS, STATUSES, WINDOWS, filter_from_query

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request, current: PageUser, session: SessionDep) -> HTMLResponse:
    flt = filter_from_query(request.query_params.multi_items())
    page = overview(session, flt)
    owners = list(session.execute(select(Owner.id, Owner.name).order_by(Owner.name)).all())
    areas = list(session.execute(select(Area.id, Area.label).order_by(Area.label, Area.id)).all())
    sparklines = {row.id: sparkline_svg(row.sparkline, label=f"{row.label}: items per period")
                  for row in page.rows}
    return render(request, "overview.html", current, {
        "page": page, "flt": flt, "owners": owners, "areas": areas, "statuses": STATUSES, "windows": list(WINDOWS),
        "sorts": list(SORTS), "sparklines": sparklines}, session=session)
