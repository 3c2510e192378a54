"""Qt runs offscreen in tests, and the window's settings, autosave and log go to a test location."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
