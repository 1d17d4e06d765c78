"""RADIUS (RFC 2865, 2866, 2869, 3162, 3579, 5080) over asyncio UDP, with packets through pyrad.

See docs/radius.md for what is sent, what is honoured and how to set up FreeRADIUS.
"""
