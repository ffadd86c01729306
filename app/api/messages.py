"""Messages of a conversation, and attachment downloads."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse
from sqlalchemy import select

from app.api.deps import PrincipalDep, RuntimeDep, SessionDep
from app.api.schemas import MessageCreate, MessageUpdate
from app.errors import NotFound
from app.models import Attachment
from app.tickets import conversations as conversation_service
from app.tickets import replies
from app.tickets.views import present_messages

router = APIRouter(prefix="/api/v1/accounts/{account_id}", tags=["messages"])


@router.get("/conversations/{conversation_id}/messages", summary="Messages, oldest first (`before` pages back)")
async def list_messages(
    account_id: int, conversation_id: int, principal: PrincipalDep, session: SessionDep, before: int | None = None
) -> dict[str, Any]:
    conversation = await conversation_service.get_conversation(session, principal, conversation_id)
    rows = await replies.list_messages(session, conversation, before=before)
    return {
        "meta": {"contact_last_seen_at": None, "agent_last_seen_at": None},
        "payload": await present_messages(session, rows, {conversation.id: conversation.display_id}),
    }


@router.post("/conversations/{conversation_id}/messages", summary="Reply, or add a private note")
async def create_message(
    account_id: int, conversation_id: int, body: MessageCreate, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    conversation = await conversation_service.get_conversation(session, principal, conversation_id, for_update=True)
    message, _ = await replies.create_message(
        session, principal, conversation,
        content=body.content, message_type=body.message_type, private=body.private,
        content_type=body.content_type, content_attributes=body.content_attributes,
        source_id=body.source_id, echo_id=body.echo_id,
    )
    (payload,) = await present_messages(session, [message], {conversation.id: conversation.display_id})
    return payload


async def _edit(session: Any, principal: Any, message_id: int, conversation_id: int | None, content: str | None) -> dict[str, Any]:
    conversation = None
    if conversation_id is not None:
        conversation = await conversation_service.get_conversation(session, principal, conversation_id)
    message, owner = await replies.get_message(session, principal, message_id, conversation)
    if content is None:
        await replies.delete_message(session, owner, message)
    else:
        await replies.update_message(session, owner, message, content=content)
    (payload,) = await present_messages(session, [message], {owner.id: owner.display_id})
    return payload


@router.delete("/conversations/{conversation_id}/messages/{message_id}", summary="Delete a message")
async def delete_message(
    account_id: int, conversation_id: int, message_id: int, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    return await _edit(session, principal, message_id, conversation_id, None)


@router.patch("/conversations/{conversation_id}/messages/{message_id}", summary="Edit a message")
async def update_message(
    account_id: int, conversation_id: int, message_id: int, body: MessageUpdate, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    return await _edit(session, principal, message_id, conversation_id, body.content)


@router.patch("/messages/{message_id}", summary="Edit a message (path used by chatwoot-sdk)")
async def update_message_flat(
    account_id: int, message_id: int, body: MessageUpdate, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    return await _edit(session, principal, message_id, None, body.content)


@router.delete("/messages/{message_id}", summary="Delete a message (path used by chatwoot-sdk)")
async def delete_message_flat(account_id: int, message_id: int, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    return await _edit(session, principal, message_id, None, None)


@router.get("/attachments/{attachment_id}", summary="Download an attachment")
async def download_attachment(
    account_id: int, attachment_id: int, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> Any:
    attachment = await session.scalar(
        select(Attachment).where(Attachment.id == attachment_id, Attachment.account_id == account_id)
    )
    if attachment is None:
        raise NotFound("Attachment")
    await replies.get_message(session, principal, attachment.message_id)  # visibility check
    if attachment.storage_path:
        return FileResponse(
            runtime.store.path(attachment.storage_path),
            media_type=attachment.content_type or "application/octet-stream",
            filename=attachment.file_name or f"attachment-{attachment.id}",
        )
    if attachment.external_url:
        return RedirectResponse(attachment.external_url)
    raise NotFound("Attachment")
