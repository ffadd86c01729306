"""Contacts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app.api.deps import PrincipalDep, SessionDep
from app.api.schemas import ContactCreate, ContactMerge, ContactUpdate, Labels
from app.models import ContactInbox, Conversation
from app.tickets import contacts as contact_service
from app.tickets.presenters import contact_json, inbox_json
from app.tickets.views import present_contact, present_conversations

router = APIRouter(prefix="/api/v1/accounts/{account_id}", tags=["contacts"])


@router.get("/contacts", summary="List contacts (15 a page)")
async def list_contacts(
    account_id: int, principal: PrincipalDep, session: SessionDep, page: int = 1, sort: str | None = None
) -> dict[str, Any]:
    rows, total = await contact_service.list_contacts(session, account_id, page=page, sort=sort)
    return {"meta": {"count": total, "current_page": page}, "payload": [contact_json(c) for c in rows]}


@router.get("/contacts/search", summary="Search contacts by name, e-mail, phone or identifier (any script; "
            "an agent sees contacts of their inboxes)")
async def search_contacts(
    account_id: int, principal: PrincipalDep, session: SessionDep, q: str = "", page: int = 1
) -> dict[str, Any]:
    rows, total = await contact_service.search_contacts(
        session, account_id, q, page=page,
        inbox_filter=None if principal.is_admin else principal.inbox_filter(ContactInbox.inbox_id),
    )
    return {"meta": {"count": total, "current_page": page}, "payload": [contact_json(c) for c in rows]}


@router.post("/contacts", summary="Create a contact, optionally with an identity on an inbox")
async def create_contact(account_id: int, body: ContactCreate, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    contact, contact_inbox = await contact_service.create_contact(
        session, account_id, **body.model_dump(exclude_none=True)
    )
    payload: dict[str, Any] = {"contact": await present_contact(session, contact), "contact_inbox": None}
    if contact_inbox is not None:
        payload["contact_inbox"] = {"source_id": contact_inbox.source_id, "inbox_id": contact_inbox.inbox_id}
    return {"payload": payload}


@router.get("/contacts/{contact_id}", summary="Get a contact")
async def get_contact(account_id: int, contact_id: int, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    contact = await contact_service.get_contact(session, account_id, contact_id)
    return {"payload": await present_contact(session, contact)}


@router.put("/contacts/{contact_id}", summary="Update a contact", include_in_schema=False)
@router.patch("/contacts/{contact_id}", summary="Update a contact")
async def update_contact(
    account_id: int, contact_id: int, body: ContactUpdate, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    contact = await contact_service.get_contact(session, account_id, contact_id)
    await contact_service.update_contact(session, contact, body.model_dump(exclude_unset=True))
    return {"payload": await present_contact(session, contact)}


@router.delete("/contacts/{contact_id}", summary="Delete a contact and their conversations")
async def delete_contact(account_id: int, contact_id: int, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    await contact_service.delete_contact(session, await contact_service.get_contact(session, account_id, contact_id))
    return {}


@router.get("/contacts/{contact_id}/conversations", summary="A contact's conversations")
async def contact_conversations(
    account_id: int, contact_id: int, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    contact = await contact_service.get_contact(session, account_id, contact_id)
    rows = await contact_service.conversations_of(session, contact, principal.inbox_filter(Conversation.inbox_id))
    return {"payload": await present_conversations(session, rows)}


@router.get("/contacts/{contact_id}/labels", summary="A contact's labels")
async def contact_labels(account_id: int, contact_id: int, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    contact = await contact_service.get_contact(session, account_id, contact_id)
    return {"payload": await contact_service.contact_labels(session, contact)}


@router.post("/contacts/{contact_id}/labels", summary="Replace a contact's labels")
async def set_contact_labels(
    account_id: int, contact_id: int, body: Labels, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    contact = await contact_service.get_contact(session, account_id, contact_id)
    return {"payload": await contact_service.set_contact_labels(session, contact, body.labels)}


@router.get("/contacts/{contact_id}/contactable_inboxes", summary="Inboxes a conversation can start on")
async def contactable_inboxes(
    account_id: int, contact_id: int, request: Request, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    contact = await contact_service.get_contact(session, account_id, contact_id)
    rows = await contact_service.contactable_inboxes(session, contact)
    base_url = str(request.base_url).rstrip("/")
    return {
        "payload": [
            {"source_id": source_id, "inbox": inbox_json(inbox, public_base_url=base_url)}
            for source_id, inbox in rows
            if principal.can_see_inbox(inbox.id)
        ]
    }


@router.post("/actions/contact_merge", summary="Merge one contact into another")
async def merge_contacts(account_id: int, body: ContactMerge, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    base = await contact_service.merge_contacts(session, account_id, body.base_contact_id, body.mergee_contact_id)
    return await present_contact(session, base)


