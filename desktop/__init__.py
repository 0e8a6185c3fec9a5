"""The PySide6 desktop app: renders a node's state and sends the user's intent to it.

Layout
    app launcher startup window tabs   the shell: opens the node, builds the window from
                                       the panel registry (``tabs.PANELS``)
    shell/                             the window's frame: menus, status fields, remembered
                                       state, tray, one app per home, log file, crash dialog
                                       (imports the toolkit and the core, never an area)
    actions bridge style resources_path wording
                                       the toolkit every area uses: run a core call and say
                                       what happened; core events into ``on_event_<name>``
                                       with coalesced redraws; the look; the core's refusals
                                       in the words of the GUI's fields
    node/ peers/ encryption/ training/ the areas: one package per part of the window
                                       network/ chat/ knowledge/ tasks/

Import rule (checked by tests/test_architecture_desktop.py)
    A module of an area package imports only
      - its own area,
      - the toolkit: ``desktop.actions``, ``desktop.bridge``, ``desktop.style``,
        ``desktop.resources_path``, ``desktop.wording``,
      - the core's foundation and facade: ``core.errors``, ``core.events``,
        ``core.config``, ``core.node``, and ``core.contact_link`` (the links that the
        Node tab shows and Add peer reads),
      - the public declarations of the service its tab renders (``core.<service>.protocol``,
        the service named in its ``tabs.PANELS`` line: pure, no torch),
      - Qt and other libraries (never torch).
    The toolkit imports no area and nothing of the shell, so the arrows point one way:
    shell -> areas -> toolkit -> core. Areas reach the node only through the objects the
    window hands them (the node, and the service of their tab).

Adding a tab: a package ``desktop/<area>/`` with its panel, and one ``Panel(...)`` line in
``desktop/tabs.py``.
"""
