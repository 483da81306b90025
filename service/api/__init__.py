"""The JSON API's shared machinery; each feature's operations live in its own ``api`` module.

- ``operations``: the decorator that validates, authenticates and documents an operation.
- ``tokens``: who a bearer token is (the one token resolution).
- ``people``: the person behind a request that acts for a person.
- ``errors``: the error envelope.
- ``json_body``: the one reader of JSON request bodies (parse errors, nesting depth).
- ``openapi``: the OpenAPI document and the ``/api/docs`` page.
- ``blueprint``: ``/api/v1`` built from every feature's operations.
"""
