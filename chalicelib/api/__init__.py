"""The HTTP surface: the OpenAPI document and the answers' models it is generated from, the one error
shape, who is calling (auth) and idempotent POST /jobs. Only app.py imports it (and the tests).
"""
