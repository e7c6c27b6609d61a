"""The OCI distribution client: pull and push images through any registry, as Docker does.

Synchronous and standard library only (http.client, ssl, a thread pool for the layers).
`pull` and `push` are the verbs, `session.login` checks credentials; `auth` holds the
credentials and the ``WWW-Authenticate`` challenge flow, `options` Docker's rules for TLS
and insecure registries, `transport` the connections, `client` the registry's API calls,
`download` the blob streams (resumed when broken, verified while written), `spec_errors`
the mapping of the spec's error JSON onto skiff's `RegistryError` tree, `progress` the
per-layer statuses in Docker's words and `origins` where each blob came from (for
cross-repository mounts on push).
"""
