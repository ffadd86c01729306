"""Messages of a conversation, and attachment downloads."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from sqlalchemy import select
from starlette.routing import Match
from starlette.types import Scope

from app.api.deps import PrincipalDep, RuntimeDep, SessionDep
from app.api.schemas import MessageCreate, MessageUpdate
from app.api.uploads import Upload, read_multipart
from app.errors import NotFound
from app.models import Attachment
from app.tickets import conversations as conversation_service
from app.tickets import replies
from app.tickets.ingest import file_type_of
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


_MULTIPART_DOC = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "content": {"type": "string"},
                        "private": {"type": "boolean"},
                        "message_type": {"type": "string"},
                        "echo_id": {"type": "string"},
                        "attachments[]": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    },
                }
            },
        },
    }
}


class MultipartRoute(APIRoute):
    """A route that matches only ``multipart/form-data`` requests, so the same path can
    keep its JSON route (and that route's schema) for everything else."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is Match.FULL:
            content_type = dict(scope.get("headers") or []).get(b"content-type", b"")
            if not content_type.lower().startswith(b"multipart/form-data"):
                return Match.NONE, {}
        return match, child


async def _multipart_body(request: Request, limit: int) -> tuple[MessageCreate, list[Upload]]:
    """The message fields and ``attachments[]`` of a multipart request (413 past ``limit``)."""
    fields, uploads = await read_multipart(request, limit)
    try:
        body = MessageCreate.model_validate({
            "content": fields.get("content") or None,
            "message_type": fields.get("message_type", "outgoing"),
            "private": fields.get("private", "false").lower() in ("1", "true", "on", "yes"),
            "echo_id": fields.get("echo_id") or None,
        })
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc
    return body, uploads


async def _create(session: Any, principal: Any, runtime: Any, account_id: int, conversation_id: int,
                  body: MessageCreate, uploads: list[Upload]) -> dict[str, Any]:
    conversation = await conversation_service.get_conversation(session, principal, conversation_id, for_update=True)
    stored = [
        replies.StoredFile(
            storage_path=runtime.store.save(account_id, data, name), file_name=name,
            content_type=content_type, file_size=len(data), file_type=file_type_of(content_type),
        )
        for name, content_type, data in uploads
    ]
    message, _ = await replies.create_message(
        session, principal, conversation,
        content=body.content, message_type=body.message_type, private=body.private,
        content_type=body.content_type, content_attributes=body.attributes(),
        source_id=body.source_id, echo_id=body.echo_id, attachments=stored,
    )
    payload = replies.presented(session, message)
    if payload is None:
        (payload,) = await present_messages(session, [message], {conversation.id: conversation.display_id})
    return payload


async def create_message_with_files(
    account_id: int, conversation_id: int, request: Request, principal: PrincipalDep, session: SessionDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    """A reply or note with files (Chatwoot's multipart form with ``attachments[]``)."""
    body, uploads = await _multipart_body(request, runtime.settings.max_upload_bytes)
    return await _create(session, principal, runtime, account_id, conversation_id, body, uploads)


# Registered before the JSON route: the first route that matches a request wins.
router.add_api_route(
    "/conversations/{conversation_id}/messages", create_message_with_files, methods=["POST"],
    route_class_override=MultipartRoute, include_in_schema=False,
)


@router.post("/conversations/{conversation_id}/messages", openapi_extra=_MULTIPART_DOC,
             summary="Reply, or add a private note (JSON; or multipart with `attachments[]` files)")
async def create_message(
    account_id: int, conversation_id: int, body: MessageCreate, principal: PrincipalDep, session: SessionDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    return await _create(session, principal, runtime, account_id, conversation_id, body, [])


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
