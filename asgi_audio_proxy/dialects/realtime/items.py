"""Conversation items a Realtime client creates, and the items the conversation remembers.

Owns: the check of a ``conversation.item.create``'s item (as strict as the real API is on the
fields this proxy reads), the item as the conversation keeps and echoes it (its id, ``object``,
``status``; input audio shown by its transcript, never its bytes), what the model can make of
it (:func:`text_for_instructions` for system and developer text, :func:`spoken_audio` for audio
content), and :class:`ItemStore`, the bounded record of items that ``conversation.item.retrieve``
and ``.delete`` read. Must not: decode audio, build events other than the items themselves, or
know the session's options.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

from .wire import RealtimeRequestError

__all__ = ["ItemStore", "client_item", "spoken_audio", "text_for_instructions"]

Item = dict[str, Any]
#: items remembered for retrieve and delete (older ones are unknown, as if deleted)
_REMEMBERED_ITEMS = 256
_ROLES = ("system", "developer", "user", "assistant")
_ITEM_TYPES = ("message", "function_call", "function_call_output")


def client_item(event: dict[str, Any], new_id: str, event_id: str | None) -> Item:
    """The item of a ``conversation.item.create`` as the conversation keeps it.

    Args:
        event: the client event.
        new_id: the id it gets when the client gave none.
        event_id: the client event's id (for the error).

    Raises:
        RealtimeRequestError: no item, an item type or role the API does not have, or message
            content that is not a list of objects.
    """
    def bad(message: str, param: str, code: str = "invalid_value") -> RealtimeRequestError:
        return RealtimeRequestError(message, code=code, param=param, event_id=event_id)

    item = event.get("item")
    if not isinstance(item, dict):
        raise bad("Missing required parameter: 'item'.", "item", "missing_required_parameter")
    kind = item.get("type", "message")
    if kind not in _ITEM_TYPES:
        raise bad(f"Invalid value: '{kind}'. Supported values are: 'message', 'function_call' and "
                  "'function_call_output'.", "item.type")
    kept: Item = {key: copy.deepcopy(value) for key, value in item.items() if key != "content"}
    item_id = item.get("id")
    kept.update(id=item_id if isinstance(item_id, str) and item_id else new_id,
                object="realtime.item", type=kind, status="completed")
    if kind == "message":
        if item.get("role") not in _ROLES:
            raise bad(f"Invalid value: '{item.get('role')}'. Supported values are: 'system', "
                      "'developer', 'user' and 'assistant'.", "item.role")
        content = item.get("content", [])
        if not isinstance(content, list) or not all(isinstance(part, dict) for part in content):
            raise bad("Invalid type for 'item.content': expected an array of objects.", "item.content",
                      "invalid_type")
        kept["content"] = [_shown(part) for part in content]
    return kept


def _shown(part: dict[str, Any]) -> dict[str, Any]:
    """A content part as echoed: audio by its transcript only (the bytes are not sent back)."""
    if part.get("type") in ("input_audio", "audio", "output_audio"):
        return {key: value for key, value in part.items() if key != "audio"} | {
            "transcript": part.get("transcript")}
    return copy.deepcopy(part)


def text_for_instructions(event: dict[str, Any]) -> str | None:
    """The text of a system or developer message (``None``: not one), which the model takes as
    part of its instructions."""
    item = event["item"]
    if item.get("type", "message") != "message" or item.get("role") not in ("system", "developer"):
        return None
    texts = [part["text"] for part in item.get("content", [])
             if part.get("type") in ("input_text", "text") and isinstance(part.get("text"), str)]
    return "\n".join(texts) if texts else None


def spoken_audio(event: dict[str, Any]) -> list[str]:
    """The base64 audio of a user message's ``input_audio`` parts, which the model hears."""
    item = event["item"]
    if item.get("type", "message") != "message" or item.get("role") != "user":
        return []
    return [part["audio"] for part in item.get("content", [])
            if part.get("type") == "input_audio" and isinstance(part.get("audio"), str)]


class ItemStore:
    """The conversation's items by id, oldest forgotten first past a bound."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, Item] = OrderedDict()

    def add(self, item: Item) -> None:
        """Keep ``item`` (a later item with the same id replaces it)."""
        self._items.pop(item["id"], None)
        self._items[item["id"]] = copy.deepcopy(item)
        while len(self._items) > _REMEMBERED_ITEMS:
            self._items.popitem(last=False)

    def get(self, item_id: object) -> Item | None:
        """The item with ``item_id`` (``None``: unknown)."""
        item = self._items.get(item_id) if isinstance(item_id, str) else None
        return copy.deepcopy(item) if item is not None else None

    def delete(self, item_id: object) -> bool:
        """Forget the item; whether it was known."""
        return isinstance(item_id, str) and self._items.pop(item_id, None) is not None

    def retrieved(self, item_id: object, event_id: str | None) -> Item:
        """The ``conversation.item.retrieved`` answering a retrieve of ``item_id``.

        Raises:
            RealtimeRequestError: an unknown item (``item_retrieve_invalid_item_id``, as the API).
        """
        item = self.get(item_id)
        if item is None:
            raise RealtimeRequestError(f"Item with item_id not found: {item_id!s:.64}", param="item_id",
                                       code="item_retrieve_invalid_item_id", event_id=event_id)
        return {"type": "conversation.item.retrieved", "item": item}

    def deleted(self, item_id: object, event_id: str | None) -> Item:
        """The ``conversation.item.deleted`` answering a delete of ``item_id`` (the record only:
        the model keeps what it heard).

        Raises:
            RealtimeRequestError: an unknown item (``item_delete_invalid_item_id``, as the API).
        """
        if not self.delete(item_id):
            raise RealtimeRequestError(f"Item with item_id not found: {item_id!s:.64}", param="item_id",
                                       code="item_delete_invalid_item_id", event_id=event_id)
        return {"type": "conversation.item.deleted", "item_id": item_id}
