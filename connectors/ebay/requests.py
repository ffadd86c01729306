"""eBay return and item-not-received (INR) requests, read from the **Post-Order API**.

Pages followed (developer.ebay.com, *Post-Order API*):

* *Search Returns* ``GET /post-order/v2/return/search``: ``return_state`` (``ALL_OPEN``),
  ``role`` (``SELLER``), ``creation_date_range_from`` (ISO 8601, at most 18 months back),
  ``limit``, ``offset`` (the page number, from 1); answers ``members`` of
  *ReturnSummaryType* — ``returnId``, ``orderId``, ``buyerLoginName``, ``state``,
  ``status``, ``creationInfo`` (``item.itemId`` / ``item.transactionId``, ``reason``,
  ``comments.content``, ``creationDate.value``), ``sellerResponseDue.respondByDate.value``
  — and ``paginationOutput`` (``offset``, ``limit``, ``totalPages``, ``totalEntries``);
* *Search Inquiries* ``GET /post-order/v2/inquiry/search``: ``inquiry_status`` (``OPEN``),
  ``inquiry_creation_date_range_from``, ``limit``, ``offset``; answers ``members`` of
  *InquirySummaryType* — ``inquiryId``, ``inquiryStatusEnum``, ``itemId``,
  ``transactionId``, ``buyer``, ``creationDate.value``, ``respondByDate.value`` — and
  ``paginationOutput``;
* *Send Return Message* ``POST /post-order/v2/return/{returnId}/send_message`` and *Send
  Inquiry Message* ``POST /post-order/v2/inquiry/{inquiryId}/send_message``:
  ``{"message": {"content"}}``;
* *Making a Call*: ``Authorization`` and ``X-EBAY-C-MARKETPLACE-ID`` (``EBAY-US``…) on
  every call; *Using OAuth with traditional APIs*: the OAuth user token is accepted,
  sent as ``Authorization: IAF <token>``.

Each open request becomes a conversation of its own (``thread_key`` ``return:<id>`` or
``inquiry:<id>``) opened by the buyer's request, with ``custom_attributes.ebay_request``
(``return`` / ``item_not_received``), ``ebay_request_id``, ``order_id`` and
``product_id``, so the 3-business-day eBay rule starts on it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connectors.base import InboundMessage, SenderIdentity
from connectors.base.marketplace import order_attributes

RETURN_SEARCH_PATH = "/post-order/v2/return/search"
INQUIRY_SEARCH_PATH = "/post-order/v2/inquiry/search"
RETURN_MESSAGE_PATH = "/post-order/v2/return/{id}/send_message"
INQUIRY_MESSAGE_PATH = "/post-order/v2/inquiry/{id}/send_message"
#: ``thread_key`` prefix -> (request kind, the path that answers it).
THREADS = {"return": ("return", RETURN_MESSAGE_PATH), "inquiry": ("item_not_received", INQUIRY_MESSAGE_PATH)}


def post_order_time(value: Any) -> float:
    """Unix seconds of a Post-Order ``DateTime`` (``{"value": "2026-11-30T09:15:00.000Z"}``)."""
    text = value.get("value") if isinstance(value, dict) else value
    if not text:
        return 0.0
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


def iso(seconds: float) -> str:
    """A Post-Order date filter value."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def request_thread(thread_key: str | None) -> tuple[str, str] | None:
    """``(kind, request id)`` of a request conversation's thread key, None for a chat."""
    prefix, _, request_id = (thread_key or "").partition(":")
    return (prefix, request_id) if prefix in THREADS and request_id else None


def _message(inbox_id: int, kind: str, request_id: str, buyer: str, text: str, created: float,
             attributes: dict[str, Any]) -> InboundMessage:
    prefix = "return" if kind == "return" else "inquiry"
    return InboundMessage(
        inbox_id=inbox_id,
        source_id=f"ebay-{prefix}-{request_id}",
        thread_key=f"{prefix}:{request_id}",
        sender=SenderIdentity(source_id=buyer, name=buyer),
        text=text,
        subject=f"eBay {'return' if kind == 'return' else 'item not received'} request {request_id}",
        sent_at=datetime.fromtimestamp(created, UTC),
        metadata={"ebay_request": kind},
        conversation_attributes={"ebay_request": kind, "ebay_request_id": request_id, **attributes},
    )


def parse_return(inbox_id: int, raw: dict[str, Any]) -> InboundMessage | None:
    """An open return request (a *ReturnSummaryType* member) as the buyer's opening message."""
    request_id = str(raw.get("returnId") or "")
    if not request_id:
        return None
    info = raw.get("creationInfo") or {}
    item = info.get("item") or {}
    order = raw.get("orderId")
    lines = [f"Return request {request_id}" + (f" for order {order}" if order else "")
             + (f": {info['reason']}" if info.get("reason") else "")]
    comment = (info.get("comments") or {}).get("content")
    if comment:
        lines.append(str(comment))
    attributes = order_attributes("ebay", order_id=order, product_id=item.get("itemId"))
    due = ((raw.get("sellerResponseDue") or {}).get("respondByDate") or {}).get("value")
    if due:
        attributes["ebay_respond_by"] = due
    if raw.get("state"):
        attributes["ebay_request_state"] = raw["state"]
    buyer = str(raw.get("buyerLoginName") or "unknown")
    return _message(inbox_id, "return", request_id, buyer, "\n".join(lines),
                    post_order_time(info.get("creationDate")), attributes)


def parse_inquiry(inbox_id: int, raw: dict[str, Any]) -> InboundMessage | None:
    """An open INR inquiry (an *InquirySummaryType* member) as the buyer's opening message."""
    request_id = str(raw.get("inquiryId") or "")
    if not request_id:
        return None
    item, transaction = raw.get("itemId"), raw.get("transactionId")
    attributes = order_attributes("ebay", order_id=raw.get("orderId"), product_id=item)
    if item and transaction:
        attributes["ebay_order_line_item"] = f"{item}-{transaction}"  # eBay's OrderLineItemID
    due = (raw.get("respondByDate") or {}).get("value")
    if due:
        attributes["ebay_respond_by"] = due
    if raw.get("inquiryStatusEnum"):
        attributes["ebay_request_state"] = raw["inquiryStatusEnum"]
    text = f"Item not received request {request_id}" + (f" for item {item}" if item else "")
    buyer = str(raw.get("buyer") or "unknown")
    return _message(inbox_id, "item_not_received", request_id, buyer, text,
                    post_order_time(raw.get("creationDate")), attributes)
