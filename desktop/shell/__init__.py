"""The window's shell: what surrounds the tabs and outlives any one of them.

    menus       File / View / Help, their shortcuts (Ctrl+Q, Ctrl+W, Ctrl+1..9, F1)
    status      the permanent status-bar fields: node state, peers, route, encryption
    prefs       window geometry, last tab, form fields: an ini file in the node's home
    tray        the close question (keep running in the tray, or quit) and the tray icon
    single      one app per home: a second launch raises the running window
    logfile     the rotated log file in the home
    crash       an unexpected exception is logged and shown with the log's path
    shell       ties them to a MainWindow

The shell imports the toolkit (``desktop.style``, ``desktop.bridge``) and the core, never an
area package: the window hands it the widgets it works on.
"""
