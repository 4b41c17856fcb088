"""The HTTP surface: the OpenAPI document, the one error shape, who is calling (auth) and idempotent
POST /jobs. Only app.py imports it.
"""
