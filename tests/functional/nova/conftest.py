"""Nova's test packages are loaded by tests/fixtures/nova_threading.py.

``tests/conftest.py`` imports it before any test module, because the order
of imports across the whole run decides oslo.service's backend.
"""
