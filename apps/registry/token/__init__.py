"""Berth as the registry's token service (Docker registry token specification).

docker-registry trusts no password of its own: its config.yml (apps/registry/config.py)
names Berth's `GET /registry/token/` as the `realm` and the certificate of Berth's
signing key as its `rootcertbundle`. The flow of one request:

1. A client (docker, an engine pulling for a deployment, Berth itself) asks the registry,
   which answers 401 with `WWW-Authenticate: Bearer realm=...,service=...,scope=...`.
2. The client calls the realm with Basic credentials (or none, for anonymous pulls), the
   `service` and one `scope` per resource it wants (`repository:acme/web:pull,push`).
   `views.RegistryTokenView` parses the request; `credentials.authenticate_basic` turns
   the credentials into a `scopes.Principal` (a user with their password or an API token,
   a robot, Berth's own short-lived deployer and publisher credentials); failed logins
   are counted per client address and username.
3. `service.token_for` grants what was asked AND allowed (`scopes.grant`, pure policy:
   tenant roles, robot scopes, public repositories), refuses a push into a tenant over
   its storage quota, and signs a short-lived ES256 JWT (`service.issue_token`) with the
   installation's key (`keys`), whose header `kid` is the libtrust key id the registry
   derives from the certificate.
4. The client retries its registry request with `Authorization: Bearer <token>`; the
   registry checks the signature, issuer, audience, expiry and the `access` claim.

Berth's own calls to the registry API (apps/registry/client.py) sign their tokens with
`service.issue_token` directly; the gate (apps/registry/gate.py) checks a pusher's token
with the same key.
"""
