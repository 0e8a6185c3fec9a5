"""The Chat tab: contacts, one conversation at a time, contact requests, safety numbers.

- ``chat_panel``: :class:`ChatPanel`, the tab; renders ``node.service("chat")``
  and turns the node's ``chat_*`` events into row updates (it never polls).
- ``contacts_model``: the contacts list (rows have a ``kind``: ``peer`` today,
  ``group`` when the service has groups).
- ``messages_model`` / ``message_delegate``: one conversation's messages as a
  model drawn by a delegate (no widget per message: 10,000 rows scroll).
  Rows have a ``kind`` too (``text`` today; file rows later).
- ``conversation_view``: header, badges, timer, the message list, the message box.
- ``requests_box``, ``safety_dialog``, ``notifier``: the smaller parts.

Messages live in the service's memory and in these models only: nothing here
writes anything anywhere.
"""
