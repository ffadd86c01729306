"""The widget's pre-chat form and e-mail collection: the visitor's contact gets an e-mail
address (replies may then also go by e-mail), never one that belongs to someone else."""

from __future__ import annotations

from tests.test_widget import new_visitor, visitor_headers, widget_inbox


async def _contact(client, tenant, contact_id: int) -> dict:
    response = await client.get(tenant.path(f"/contacts/{contact_id}"), headers=tenant.headers)
    assert response.status_code == 200
    return response.json()["payload"]


async def test_config_announces_the_pre_chat_form_and_email_collection(client, tenants):
    tenant = await tenants.new()
    _, token = await widget_inbox(tenant)
    config = (await client.get(f"/widget/api/config?website_token={token}")).json()
    assert config["pre_chat_form_enabled"] is False and config["continuity_via_email"] is True
    inbox_id = await tenant.inbox("web_widget", name="Shop chat", pre_chat_form_enabled=True,
                                  pre_chat_form_options={"pre_chat_message": "บอกชื่อและอีเมลของคุณ", "require_email": True},
                                  continuity_via_email=False, email_collect_after_seconds=5)
    inbox = (await client.get(tenant.path(f"/inboxes/{inbox_id}"), headers=tenant.headers)).json()
    config = (await client.get(f"/widget/api/config?website_token={inbox['inbox_identifier']}")).json()
    assert config["pre_chat_form_enabled"] is True and config["pre_chat_require_email"] is True
    assert config["pre_chat_message"] == "บอกชื่อและอีเมลของคุณ"
    assert config["continuity_via_email"] is False and config["email_collect_after_seconds"] == 5


async def test_pre_chat_form_sets_name_and_email(client, tenants):
    tenant = await tenants.new()
    _, token = await widget_inbox(tenant)
    visitor = await new_visitor(client, token, name="Trần Minh", email="  Minh.Tran@Example.VN ")
    assert visitor["contact"] == {"id": visitor["contact"]["id"], "name": "Trần Minh", "email": "minh.tran@example.vn"}
    contact = await _contact(client, tenant, visitor["contact"]["id"])
    assert contact["email"] == "minh.tran@example.vn"
    assert contact["additional_attributes"]["continuity_via_email"] is True
    bad = await client.post("/widget/api/visitors", json={"website_token": token, "email": "not-an-address"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "email"


async def test_visitor_leaves_an_email_later(client, tenants):
    tenant = await tenants.new()
    _, token = await widget_inbox(tenant)
    visitor = await new_visitor(client, token)
    sent = await client.post("/widget/api/messages", headers=visitor_headers(visitor), json={"content": "มีใครอยู่ไหมคะ"})
    assert sent.status_code == 200
    saved = await client.patch("/widget/api/visitor", headers=visitor_headers(visitor),
                               json={"email": "noi@example.co.th", "name": "น้อย"})
    assert saved.status_code == 200 and saved.json()["email_saved"] is True
    restored = (await client.get("/widget/api/visitor", headers=visitor_headers(visitor))).json()
    assert restored["contact"]["email"] == "noi@example.co.th" and restored["contact"]["name"] == "น้อย"
    contact = await _contact(client, tenant, visitor["contact"]["id"])
    assert (contact["email"], contact["name"]) == ("noi@example.co.th", "น้อย")
    # Without the visitor's token: 401; with a bad address: 422, nothing changed.
    assert (await client.patch("/widget/api/visitor", json={"email": "x@example.com"})).status_code == 401
    bad = await client.patch("/widget/api/visitor", headers=visitor_headers(visitor), json={"email": "noi@"})
    assert bad.status_code == 422
    assert (await _contact(client, tenant, visitor["contact"]["id"]))["email"] == "noi@example.co.th"


async def test_a_visitor_cannot_claim_a_known_customers_address(client, tenants):
    tenant, other = await tenants.new(), await tenants.new()
    known = await client.post(tenant.path("/contacts"), headers=tenant.headers,
                              json={"name": "Known Customer", "email": "vip@example.com"})
    assert known.status_code == 200
    _, token = await widget_inbox(tenant)
    visitor = await new_visitor(client, token, email="VIP@example.com")
    assert visitor["contact"]["email"] is None
    contact = await _contact(client, tenant, visitor["contact"]["id"])
    assert contact["email"] is None and contact["additional_attributes"]["unverified_email"] == "vip@example.com"
    known_id = known.json()["payload"]["contact"]["id"]
    assert (await _contact(client, tenant, known_id))["name"] == "Known Customer"
    # The same address is free in another account.
    _, other_token = await widget_inbox(other)
    elsewhere = await new_visitor(client, other_token, email="vip@example.com")
    assert elsewhere["contact"]["email"] == "vip@example.com"
