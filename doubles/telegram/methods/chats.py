"""Chats and members: resolving ``chat_id`` with Telegram's access rules, ``getChat``,
``getChatMember``, ``getChatAdministrators``, ``getChatMemberCount`` and ``sendChatAction``."""

from __future__ import annotations

from typing import Any

from .. import errors
from ..errors import bad_request, forbidden
from ..state import UserProfile
from ..state_chats import Channel, ChannelMembership, ChatState, PrivateChat
from .base import Context, method

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


def resolve_chat(ctx: Context, purpose: str) -> ChatState:
    """Find the chat named by ``chat_id`` and check the bot may act there.

    Args:
        ctx: The call.
        purpose: ``send``, ``edit``, ``delete`` or ``read``.

    Raises:
        ApiError: ``chat not found``, ``bot can't initiate conversation with a user``,
            ``bot was blocked by the user``, ``bot is not a member of the channel chat``,
            ``need administrator rights in the channel chat``...
    """
    raw = ctx.params.get("chat_id")
    if raw is None or raw == "":
        raise bad_request(errors.CHAT_ID_EMPTY)
    world, bot = ctx.world, ctx.bot
    if isinstance(raw, str) and raw.startswith("@"):
        wanted = raw[1:].lower()
        chat: ChatState | None = next(
            (c for c in world.channels.values() if (c.username or "").lower() == wanted), None
        )
        if chat is None:
            raise bad_request(errors.CHAT_NOT_FOUND)
    else:
        chat_id = ctx.params.integer("chat_id")
        if chat_id is None:
            raise bad_request(errors.CHAT_NOT_FOUND)
        if chat_id > 0:
            return _private_chat(ctx, chat_id, purpose)
        chat = world.channels.get(chat_id)
        if chat is None:
            raise bad_request(errors.CHAT_NOT_FOUND)
    assert isinstance(chat, Channel)
    membership = chat.membership(bot.identity.id)
    if purpose == "read":
        if membership.status != "administrator" and not chat.username:
            raise bad_request(errors.CHAT_NOT_FOUND)
        return chat
    if membership.status == "kicked":
        raise forbidden("bot was kicked from the channel chat")
    if membership.status != "administrator":
        raise forbidden("bot is not a member of the channel chat")
    if purpose == "send" and not membership.rights.get("can_post_messages"):
        raise bad_request("need administrator rights in the channel chat")
    return chat


def _private_chat(ctx: Context, user_id: int, purpose: str) -> PrivateChat:
    user = ctx.world.users.get(user_id)
    chat = ctx.world.private_chats.get((ctx.bot.identity.id, user_id))
    if user is None:
        raise bad_request(errors.CHAT_NOT_FOUND)
    if chat is None or not chat.started:
        if purpose == "send":
            raise forbidden("bot can't initiate conversation with a user")
        raise bad_request(errors.CHAT_NOT_FOUND)
    if chat.blocked and purpose in {"send", "edit"}:
        raise forbidden("bot was blocked by the user")
    return chat


def chat_full_info(chat: ChatState) -> dict[str, Any]:
    """Return the ``ChatFullInfo`` object ``getChat`` answers with."""
    info = chat.to_api()
    info["accent_color_id"] = abs(chat.id) % 7
    info["max_reaction_count"] = 11
    info["accepted_gift_types"] = {
        "unlimited_gifts": True,
        "limited_gifts": True,
        "unique_gifts": True,
        "premium_subscription": True,
        "gifts_from_channels": True,
    }
    if isinstance(chat, PrivateChat) and chat.user.username:
        info["active_usernames"] = [chat.user.username]
    if isinstance(chat, Channel):
        if chat.username:
            info["active_usernames"] = [chat.username]
        if chat.description:
            info["description"] = chat.description
    return info


def member_object(user: dict[str, Any], membership: ChannelMembership) -> dict[str, Any]:
    """Return the ``ChatMember`` object for a bot's channel membership."""
    if membership.status == "administrator":
        return {
            "status": "administrator",
            "user": user,
            "can_be_edited": False,
            "is_anonymous": False,
            **{name: bool(value) for name, value in membership.rights.items()},
        }
    if membership.status == "kicked":
        return {"status": "kicked", "user": user, "until_date": 0}
    return {"status": membership.status, "user": user}


def owner_object(owner: UserProfile) -> dict[str, Any]:
    """Return the ``ChatMemberOwner`` object of a channel's creator."""
    return {"status": "creator", "user": owner.to_api(), "is_anonymous": False}


@method("sendChatAction")
async def send_chat_action(ctx: Context) -> Any:
    """``sendChatAction``: validated and acknowledged."""
    action = ctx.params.string("action")
    if action not in _CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    resolve_chat(ctx, "send")
    return True


@method("getChat")
async def get_chat(ctx: Context) -> Any:
    """``getChat``: ``ChatFullInfo`` of a private chat or a visible channel."""
    return chat_full_info(resolve_chat(ctx, "read"))


@method("getChatMember")
async def get_chat_member(ctx: Context) -> Any:
    """``getChatMember``: in channels the bot sees itself, and everyone when an administrator."""
    chat = resolve_chat(ctx, "read")
    user_id = ctx.params.integer("user_id")
    if user_id is None:
        raise bad_request("invalid user_id specified")
    bot = ctx.bot.identity
    if isinstance(chat, PrivateChat):
        if user_id == chat.user.id:
            return {"status": "member", "user": chat.user.to_api()}
        if user_id == bot.id:
            return {"status": "member", "user": bot.to_api()}
        raise bad_request("user not found")
    assert isinstance(chat, Channel)
    membership = chat.membership(bot.id)
    if user_id == bot.id:
        return member_object(bot.to_api(), membership)
    if membership.status != "administrator":
        raise bad_request("member list is inaccessible")
    if chat.owner is not None and user_id == chat.owner.id:
        return owner_object(chat.owner)
    other_bot = ctx.world.bots_by_id.get(user_id)
    if other_bot is not None:
        return member_object(other_bot.identity.to_api(), chat.membership(user_id))
    user = ctx.world.users.get(user_id)
    if user is None:
        raise bad_request("user not found")
    return {"status": "left", "user": user.to_api()}


@method("getChatAdministrators")
async def get_chat_administrators(ctx: Context) -> Any:
    """``getChatAdministrators``: the owner and the administrator bots of a channel."""
    chat = resolve_chat(ctx, "read")
    if isinstance(chat, PrivateChat):
        raise bad_request("there are no administrators in the private chat")
    assert isinstance(chat, Channel)
    if chat.membership(ctx.bot.identity.id).status != "administrator":
        raise bad_request("member list is inaccessible")
    admins = [owner_object(chat.owner)] if chat.owner is not None else []
    for bot_id, membership in chat.bots.items():
        if membership.status == "administrator" and bot_id in ctx.world.bots_by_id:
            identity = ctx.world.bots_by_id[bot_id].identity
            admins.append(member_object(identity.to_api(), membership))
    return admins


@method("getChatMemberCount")
async def get_chat_member_count(ctx: Context) -> Any:
    """``getChatMemberCount``: subscribers of a channel, 2 in a private chat."""
    chat = resolve_chat(ctx, "read")
    return chat.subscribers if isinstance(chat, Channel) else 2
