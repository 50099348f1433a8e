"""The pluggy markers of the "cryptoface" project, in a module that imports nothing of ours.

Plugins (built-in ones like the simulator, and third-party backends through
`cryptoface.plugins.hookimpl`) mark their hook implementations with `hookimpl`; the plugin
manager in `plugins.py` declares the specs with `hookspec`. Keeping both markers here lets
the simulator be a plugin without importing the plugin manager that loads it.
"""

import pluggy

hookspec = pluggy.HookspecMarker("cryptoface")
hookimpl = pluggy.HookimplMarker("cryptoface")
