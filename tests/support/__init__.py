"""Helpers the tests share: import them from their modules (``tests.support.loops``...), not from here."""
