"""A small Docker Engine API client (skiffd or a real Docker Engine), for the `skiff` CLI.

`api.EngineClient` speaks the API over `transport` (HTTP/1.1 on a unix socket or TCP);
`connect` chooses the host and starts skiffd when it is skiff's own and not running;
`credentials` keeps registry logins in Docker's config.json (image names are read with
skiff.reference, which every layer shares). Nothing is imported here, so each command pays
only for the modules it uses.
"""
