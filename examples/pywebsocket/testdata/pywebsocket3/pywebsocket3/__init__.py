# A package laid out as the real pywebsocket3 is, with exception classes of
# its own, put ahead of the SDK on PYTHONPATH: what a user who installed
# pywebsocket3 from PyPI next to the SDK has. Only what the test handlers
# use is here.
