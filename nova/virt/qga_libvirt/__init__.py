from nova_qga.driver import QgaLibvirtDriver  # noqa: F401  (see nova_qga/driver.py)
