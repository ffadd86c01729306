"""Labels and canned responses."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import AdminDep, PrincipalDep, SessionDep
from app.api.schemas import CannedBody, LabelBody
from app.tickets import catalog
from app.tickets.presenters import canned_response_json, label_json

router = APIRouter(prefix="/api/v1/accounts/{account_id}", tags=["labels", "canned responses"])


@router.get("/labels", summary="List labels")
async def list_labels(account_id: int, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    return {"payload": [label_json(x) for x in await catalog.list_labels(session, account_id)]}


@router.get("/labels/{label_id}", summary="Get a label")
async def get_label(account_id: int, label_id: int, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    return label_json(await catalog.get_label(session, account_id, label_id))


@router.post("/labels", summary="Create a label (administrators)")
async def create_label(account_id: int, body: LabelBody, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    return label_json(await catalog.save_label(session, account_id, None, body.model_dump()))


@router.patch("/labels/{label_id}", summary="Change a label (administrators)")
async def update_label(account_id: int, label_id: int, body: LabelBody, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    label = await catalog.get_label(session, account_id, label_id)
    return label_json(await catalog.save_label(session, account_id, label, body.model_dump()))


@router.delete("/labels/{label_id}", summary="Delete a label (administrators)")
async def delete_label(account_id: int, label_id: int, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    await session.delete(await catalog.get_label(session, account_id, label_id))
    return {}


@router.get("/canned_responses", summary="List canned responses (`search` by short code or text)")
async def list_canned(account_id: int, principal: PrincipalDep, session: SessionDep, search: str | None = None) -> list[dict[str, Any]]:
    return [canned_response_json(x) for x in await catalog.list_canned(session, account_id, search)]


@router.post("/canned_responses", summary="Create a canned response")
async def create_canned(account_id: int, body: CannedBody, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    return canned_response_json(await catalog.save_canned(session, account_id, None, body.model_dump()))


@router.patch("/canned_responses/{canned_response_id}", summary="Change a canned response")
async def update_canned(
    account_id: int, canned_response_id: int, body: CannedBody, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    item = await catalog.get_canned(session, account_id, canned_response_id)
    return canned_response_json(await catalog.save_canned(session, account_id, item, body.model_dump()))


@router.delete("/canned_responses/{canned_response_id}", summary="Delete a canned response")
async def delete_canned(account_id: int, canned_response_id: int, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    await session.delete(await catalog.get_canned(session, account_id, canned_response_id))
    return {}
