"""The Chat tab: contacts and groups, one conversation at a time, files, requests, safety numbers.

- ``chat_panel``: :class:`ChatPanel`, the tab; renders ``node.service("chat")``
  (its ``groups`` and ``files`` too) and turns the node's ``chat_*`` events into
  row updates (it never polls).
- ``contacts_model``: the contacts list (rows have a ``kind``: ``peer`` or
  ``group``; a group the person left or was removed from stays, read-only).
- ``messages_model`` / ``message_delegate``: one conversation's messages as a
  model drawn by a delegate (no widget per message: 10,000 rows scroll; each
  row's layout is cached). Rows have a ``kind``: ``text`` or ``file``.
- ``file_row``: :class:`FileCard`, a file transfer in the conversation (name,
  size, progress bar, state, Save…/Decline/Cancel); one per file row.
- ``group_actions`` / ``file_actions``: the panel's group and file handling (mixins).
- ``conversation_view``: header, badges, timer, members, notices, the message
  list, the message box.
- ``group_dialogs``: create a group; see (and, as its creator, change) its members.
- ``requests_box``, ``safety_dialog``, ``notifier``: the smaller parts.

Messages live in the service's memory and in these models only: nothing here
writes anything anywhere (a received file is written by the node, at the path
the person chose; the desktop never reads a file's content).
"""
