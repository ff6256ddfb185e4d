"""OAuth access tokens on a real `serve --http` (issue 17, part 1): a local authorization
setup — RSA keys made here, a JWKS and an RFC 7662 introspection endpoint served over real
HTTP on 127.0.0.1 — tokens minted with joserfc (what fastmcp verifies with), a real MCP
client, and the hostile tokens a resource server meets."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx2
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwk, jwt
from pydantic import ValidationError

from orchestrator_mcp.auth import Authenticator, Principal
from orchestrator_mcp.config.http import HttpSettings
from tests.conftest import free_port, write_config
from tests.test_cli import cli
from tests.test_front import http_server, wait_for_tool
from tests.test_security_http import _env

MAIN = "main-token-0123456789abcdef"
AUDIENCE = "orchestrator"
CLIENT_ID = "orchestrator-rs"
CLIENT_SECRET = "introspection-secret-6f1d2c9a"
# Keycloak's shape: realm roles in realm_access.roles, mapped onto our scopes.
SCOPE_MAP = {"ops-read": "read", "ops-run": ["read", "run"], "ops-approve": "approve",
             "ops-admin": ["read", "run", "approve", "admin"]}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: Any) -> str:
    return _b64(json.dumps(value).encode())


class Signer:
    """An RSA key pair (cryptography) with a key id, as an identity provider holds it."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key = jwk.RSAKey.import_key(
            private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
            {"kid": kid, "use": "sig"})
        self.public_pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def public_jwk(self) -> dict[str, Any]:
        return {**self.key.as_dict(private=False), "alg": "RS256"}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        header = {"alg": "RS256", "kid": self.kid, **header}
        return jwt.encode(header, claims, self.key, algorithms=[header["alg"]])


class IdentityProvider:
    """JWKS at /realms/ops/certs and introspection at /realms/ops/introspect, over real HTTP;
    counts JWKS fetches so the refetch limit can be seen."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/realms/ops"
        self.issuer = self.base
        self.signers = [Signer("key-1")]
        self.jwks_fetches = 0
        self.opaque: dict[str, dict[str, Any]] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path != "/realms/ops/certs":
                    return self._json(404, {"error": "not_found"})
                idp.jwks_fetches += 1
                self._json(200, {"keys": [s.public_jwk() for s in idp.signers]})

            def do_POST(self) -> None:
                expected = "Basic " + base64.b64encode(
                    f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                if self.headers.get("Authorization") != expected:
                    return self._json(401, {"error": "invalid_client"})
                token = form.get("token", [""])[0]
                self._json(200, idp.opaque.get(token, {"active": False}))

        return Handler

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": self.issuer, "aud": AUDIENCE, "sub": "alice", "iat": now,
                "exp": now + 300, "realm_access": {"roles": ["ops-run"]}, **overrides}

    def token(self, signer: Signer | None = None, header: dict[str, Any] | None = None,
              **claims: Any) -> str:
        return (signer or self.signers[0]).sign(self.claims(**claims), **(header or {}))

    def __enter__(self) -> IdentityProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    with IdentityProvider() as provider:
        yield provider


def _jwt_auth(idp: IdentityProvider, **extra: Any) -> dict[str, Any]:
    return {"type": "jwt", "issuer": idp.issuer, "audience": AUDIENCE,
            "jwks_uri": f"{idp.base}/certs", "scopes_claim": "realm_access.roles",
            "scope_map": SCOPE_MAP, "jwks_refresh_seconds": 1, **extra}


@pytest.fixture(scope="module")
def server(idp: IdentityProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("jwt")
    config = write_config(tmp / "config", {}, http={"auth": _jwt_auth(idp)})
    with http_server(config, tmp / "data", _env(ORCH_HTTP_TOKEN=MAIN, LLM_PROVIDER="scripted")
                     ) as url:
        yield url


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _metadata_url(server: str) -> str:
    return f"{server}/.well-known/oauth-protected-resource/mcp"


# ---- discovery ---------------------------------------------------------------------------


async def test_protected_resource_metadata_is_served_open(server: str,
                                                          idp: IdentityProvider) -> None:
    async with httpx2.AsyncClient() as http:
        for path in ("/.well-known/oauth-protected-resource/mcp",
                     "/.well-known/oauth-protected-resource"):
            response = await http.get(server + path)
            assert response.status_code == 200, path
            document = response.json()
            assert document["resource"] == f"{server}/mcp"
            assert document["authorization_servers"] == [idp.issuer]
            assert document["scopes_supported"] == sorted(SCOPE_MAP)
            assert document["bearer_methods_supported"] == ["header"]
        # No token at all: 401 pointing at the document, without an error (RFC 6750 §3.1).
        missing = await http.get(f"{server}/metrics")
        assert missing.status_code == 401
        challenge = missing.headers["www-authenticate"]
        assert f'resource_metadata="{_metadata_url(server)}"' in challenge
        assert "error=" not in challenge


# ---- accepted ------------------------------------------------------------------------------


async def test_mcp_client_with_a_good_token_calls_a_tool(server: str,
                                                          idp: IdentityProvider) -> None:
    token = idp.token(realm_access={"roles": ["ops-run"]})
    async with Client(StreamableHttpTransport(f"{server}/mcp", auth=token)) as client:
        await wait_for_tool(client, "list_profiles")
        result = await client.call_tool("list_profiles", {})
        assert not result.is_error
        assert "default" in result.content[0].text
    # The static token keeps working beside OAuth.
    async with httpx2.AsyncClient() as http:
        assert (await http.get(f"{server}/metrics", headers=_bearer(MAIN))).status_code == 200
        assert (await http.get(f"{server}/metrics", headers=_bearer(token))).status_code == 200


async def test_audience_list_and_clock_skew_are_accepted(server: str,
                                                         idp: IdentityProvider) -> None:
    now = int(time.time())
    async with httpx2.AsyncClient() as http:
        for token in (idp.token(aud=["account", AUDIENCE]), idp.token(nbf=now + 10)):
            response = await http.get(f"{server}/metrics", headers=_bearer(token))
            assert response.status_code == 200, response.text


# ---- refused ------------------------------------------------------------------------------


def _unsigned(idp: IdentityProvider) -> str:
    return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(idp.claims())}."


def _hs256_with_the_public_key(idp: IdentityProvider) -> str:
    """Algorithm confusion: HMAC keyed with the RSA public key everyone can fetch."""
    signing_input = (f"{_segment({'alg': 'HS256', 'kid': 'key-1'})}."
                     f"{_segment(idp.claims())}").encode()
    signature = hmac.new(idp.signers[0].public_pem, signing_input, hashlib.sha256).digest()
    return f"{signing_input.decode()}.{_b64(signature)}"


REFUSED = {
    "expired": lambda idp: idp.token(exp=int(time.time()) - 60, iat=int(time.time()) - 400),
    "wrong audience": lambda idp: idp.token(aud="someone-else"),
    "wrong issuer": lambda idp: idp.token(iss="https://evil.example/realms/ops"),
    "alg none": _unsigned,
    "HS256 with the public key": _hs256_with_the_public_key,
    "unknown key": lambda idp: idp.token(signer=Signer("key-1")),  # same kid, other key
    "unknown kid": lambda idp: idp.token(signer=Signer("stranger")),
    "not yet valid": lambda idp: idp.token(nbf=int(time.time()) + 3600),
    "no exp": lambda idp: idp.signers[0].sign(
        {k: v for k, v in idp.claims().items() if k != "exp"}),
    "no subject": lambda idp: idp.signers[0].sign(
        {k: v for k, v in idp.claims().items() if k != "sub"}),
    "tampered payload": lambda idp: (lambda t: t.split(".")[0] + "." + _segment(
        idp.claims(realm_access={"roles": ["ops-admin"]})) + "." + t.split(".")[2])(
        idp.token()),
}


@pytest.mark.parametrize("case", REFUSED)
async def test_bad_tokens_get_401_with_the_discovery_challenge(
        server: str, idp: IdentityProvider, case: str) -> None:
    token = REFUSED[case](idp)
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"{server}/metrics", headers=_bearer(token))
    assert response.status_code == 401, (case, response.text)
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge
    assert f'resource_metadata="{_metadata_url(server)}"' in challenge
    assert idp.issuer in response.json()["detail"]


async def test_mcp_client_with_a_bad_token_is_refused(server: str,
                                                       idp: IdentityProvider) -> None:
    expired = REFUSED["expired"](idp)
    with pytest.raises(Exception, match="error response|401|Unauthorized"):
        async with Client(StreamableHttpTransport(f"{server}/mcp", auth=expired)) as client:
            await client.list_tools()


async def test_a_missing_scope_is_403_naming_it(server: str, idp: IdentityProvider) -> None:
    reader = idp.token(sub="rita", realm_access={"roles": ["ops-read"]})
    async with httpx2.AsyncClient() as http:
        response = await http.post(f"{server}/runs", json={"goal": "x"},
                                   headers=_bearer(reader))
        assert response.status_code == 403
        assert response.json()["detail"] == "subject 'rita' (jwt) lacks the 'run' scope"
        challenge = response.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge
        assert 'scope="ops-admin ops-run"' in challenge  # the roles that grant 'run'
        nothing = idp.token(sub="nobody", realm_access={"roles": ["unmapped"]})
        assert (await http.get(f"{server}/metrics",
                               headers=_bearer(nothing))).status_code == 403
    async with Client(StreamableHttpTransport(f"{server}/mcp", auth=reader)) as client:
        await wait_for_tool(client, "run")
        result = await client.call_tool_mcp("run", {"goal": "restart nginx"})
        assert result.is_error
        assert "subject 'rita' (jwt) lacks the 'run' scope" in result.content[0].text


# ---- keys ----------------------------------------------------------------------------------


async def test_rotated_key_is_picked_up_and_refetches_are_limited(
        server: str, idp: IdentityProvider) -> None:
    async with httpx2.AsyncClient() as http:
        # Prime the cache, then flood with made-up key ids: at most one refetch per
        # jwks_refresh_seconds (1 s here), however many tokens ask.
        assert (await http.get(f"{server}/metrics",
                               headers=_bearer(idp.token()))).status_code == 200
        await _sleep_past_refresh()
        stranger = Signer("made-up")
        made_up = [idp.token(signer=stranger, header={"kid": f"made-up-{i}"})
                   for i in range(30)]
        before, started = idp.jwks_fetches, time.monotonic()
        for token in made_up:
            response = await http.get(f"{server}/metrics", headers=_bearer(token))
            assert response.status_code == 401
        elapsed = time.monotonic() - started
        fetched = idp.jwks_fetches - before
        assert fetched <= 1 + elapsed / 1.0, (fetched, elapsed)  # jwks_refresh_seconds: 1

        # The provider publishes a new key and signs with it.
        rotated = Signer("key-2")
        idp.signers.append(rotated)
        try:
            await _sleep_past_refresh()
            fresh = await http.get(f"{server}/metrics", headers=_bearer(idp.token(rotated)))
            assert fresh.status_code == 200, fresh.text
            # The old key is still published, so its tokens still work.
            assert (await http.get(f"{server}/metrics",
                                   headers=_bearer(idp.token()))).status_code == 200
        finally:
            idp.signers.remove(rotated)


async def _sleep_past_refresh() -> None:
    await asyncio.sleep(1.2)


# ---- hostile bearer values -----------------------------------------------------------------

_HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E),
                       min_size=1, max_size=300)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=10)
_JOSE_HEADER = st.fixed_dictionaries(
    {"alg": st.sampled_from(["RS256", "none", "HS256", "ES256", "PS256", "RS512", ""])
     | st.text(max_size=10) | _JSON},
    optional={"kid": st.sampled_from(["key-1", "key-2", ""]) | st.text(max_size=40) | _JSON,
              "crit": _JSON, "typ": _JSON, "jku": st.just("http://127.0.0.1:1/jwks")})


def _structured(header: Any, payload: Any, signature: bytes, raw: bool) -> str:
    def part(value: Any) -> str:
        return _b64(value) if isinstance(value, bytes) else _segment(value)

    if raw:
        return ".".join(part(v) for v in (header, payload, signature))
    return f"{_segment(header)}.{_segment(payload)}.{_b64(signature)}"


_STRUCTURED = st.builds(
    _structured, _JOSE_HEADER | _JSON,
    st.builds(lambda extra, base: {**base, **extra}, st.dictionaries(
        st.sampled_from(["exp", "nbf", "iss", "aud", "sub", "realm_access", "scope"]), _JSON,
        max_size=4), st.just({"sub": "x"})) | _JSON,
    st.binary(max_size=300), st.booleans())
_BEARERS = (_HEADER_TEXT | _STRUCTURED | st.sampled_from([
    "a.b.c", "..", ".", "e30.e30.", "e30.e30.e30.e30", "x" * 20_000,
    _b64(b"[" * 5000) + ".e30.", "eyJhbGciOiJub25lIn0." + "W" * 8000 + ".",
]))


@pytest.fixture(scope="module")
def http() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=30) as client:
        yield client


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bearer=_BEARERS)
def test_fuzzed_bearer_values_are_401_never_500(server: str, http: httpx2.Client,
                                                bearer: str) -> None:
    response = http.get(f"{server}/metrics", headers=_bearer(bearer))
    assert response.status_code == 401, (bearer[:200], response.status_code, response.text)
    assert "resource_metadata=" in response.headers["www-authenticate"]


@pytest.fixture(scope="module")
def pem_verifier() -> Iterator[Any]:
    """`verify(bearer)` on one Authenticator with a PEM key (no network), on one loop."""
    with asyncio.Runner() as runner:
        authenticator = Authenticator.from_settings(HttpSettings.model_validate({"auth": {
            "type": "jwt", "issuer": "https://idp.example.com", "audience": AUDIENCE,
            "public_key": PEM_SIGNER.public_pem.decode(), "algorithms": ["RS256", "RS512"]}}))
        yield lambda bearer: runner.run(authenticator.principal(f"Bearer {bearer}"))
        runner.run(authenticator.aclose())


PEM_SIGNER = Signer("pem")


@settings(max_examples=1000, deadline=None)
@given(bearer=_BEARERS)
def test_fuzzed_bearer_values_never_raise_in_the_verifier(pem_verifier: Any,
                                                           bearer: str) -> None:
    """The same values straight into the verifier, many more of them."""
    assert pem_verifier(bearer) is None


def test_the_verifier_accepts_what_it_should(pem_verifier: Any) -> None:
    now = int(time.time())
    claims = {"iss": "https://idp.example.com", "aud": AUDIENCE, "sub": "bob",
              "exp": now + 60, "scope": "read approve openid"}
    principal = pem_verifier(PEM_SIGNER.sign(claims))
    assert principal == Principal("bob", frozenset({"read", "approve"}), "jwt")
    assert principal.id == "jwt:bob" and principal.label == "subject 'bob' (jwt)"
    assert pem_verifier(PEM_SIGNER.sign(claims, alg="PS256")) is None  # not in algorithms
    assert pem_verifier(PEM_SIGNER.sign({**claims, "exp": float("nan")})) is None
    # A verified token is remembered, but not past its exp.
    short = PEM_SIGNER.sign({**claims, "exp": now + 2})
    assert pem_verifier(short) is not None
    time.sleep(max(0.0, now + 2.05 - time.time()))
    assert pem_verifier(short) is None


def test_the_server_survived_the_fuzz(server: str, idp: IdentityProvider) -> None:
    with httpx2.Client(timeout=10) as http:
        assert http.get(f"{server}/healthz").status_code == 200
        assert http.get(f"{server}/metrics",
                        headers=_bearer(idp.token())).status_code == 200


# ---- opaque tokens (RFC 7662) --------------------------------------------------------------


@pytest.fixture(scope="module")
def introspected(idp: IdentityProvider, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("introspection")
    auth = {"type": "introspection", "issuer": idp.issuer,
            "endpoint": f"{idp.base}/introspect", "client_id": CLIENT_ID,
            "client_secret": "${OIDC_CLIENT_SECRET}", "audience": AUDIENCE,
            "scope_map": {"orchestrator:read": "read", "orchestrator:run": ["read", "run"]},
            "cache_seconds": 0}
    config = write_config(tmp / "config", {}, http={"auth": auth})
    env = _env(LLM_PROVIDER="scripted", OIDC_CLIENT_SECRET=CLIENT_SECRET)
    with http_server(config, tmp / "data", env) as url:
        yield url, tmp / "data"


async def test_opaque_tokens_are_introspected(introspected: tuple[str, Path],
                                              idp: IdentityProvider) -> None:
    server, data = introspected
    good, revoked, foreign = (secrets.token_urlsafe(24) for _ in range(3))
    later = int(time.time()) + 300
    idp.opaque[good] = {"active": True, "sub": "svc-deploy", "aud": AUDIENCE,
                        "scope": "orchestrator:read profile", "exp": later, "iss": idp.issuer}
    idp.opaque[foreign] = {"active": True, "sub": "svc", "aud": AUDIENCE,
                           "scope": "orchestrator:run", "exp": later,
                           "iss": "https://other.example"}
    async with httpx2.AsyncClient() as http:
        ok = await http.get(f"{server}/metrics", headers=_bearer(good))
        assert ok.status_code == 200, ok.text
        denied = await http.post(f"{server}/runs", json={"goal": "x"}, headers=_bearer(good))
        assert denied.status_code == 403
        assert "subject 'svc-deploy' (introspection) lacks the 'run' scope" in denied.text
        for token in (revoked, foreign):
            refused = await http.get(f"{server}/metrics", headers=_bearer(token))
            assert refused.status_code == 401
            assert "resource_metadata=" in refused.headers["www-authenticate"]
        # Revocation takes effect at once with cache_seconds: 0.
        idp.opaque[good] = {"active": False}
        assert (await http.get(f"{server}/metrics",
                               headers=_bearer(good))).status_code == 401
    fresh = secrets.token_urlsafe(24)
    idp.opaque[fresh] = {**idp.opaque.get(good, {}), "active": True, "sub": "svc-deploy",
                         "aud": AUDIENCE, "scope": "orchestrator:read", "exp": later}
    async with Client(StreamableHttpTransport(f"{server}/mcp", auth=fresh)) as client:
        await wait_for_tool(client, "list_profiles")
        assert not (await client.call_tool("list_profiles", {})).is_error
    logs = "".join(p.read_text(errors="replace") for p in data.rglob("*.log"))
    assert CLIENT_SECRET not in logs


# ---- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(("auth", "problem"), [
    ({"algorithms": ["HS256"]}, "HS256 is a shared-secret algorithm"),
    ({"algorithms": ["none"]}, "'none' means unsigned tokens"),
    ({"jwks_uri": "http://idp.example.com/certs"}, "must use https"),
    ({"issuer": None}, "issuer"),
    ({"public_key": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----"},
     "give exactly one of 'jwks_uri'"),
    ({"scope_map": {"has space": "read"}}, "is not an OAuth scope name"),
    ({"scope_map": {"ops": "superuser"}}, "Input should be 'read', 'read_all', 'run', "
                                           "'approve' or 'admin'"),
])
def test_unsafe_or_wrong_auth_config_is_refused(auth: dict[str, Any], problem: str) -> None:
    base = {"type": "jwt", "issuer": "https://idp.example.com/realms/ops",
            "audience": AUDIENCE, "jwks_uri": "https://idp.example.com/certs"}
    settings_ = {k: v for k, v in {**base, **auth}.items() if v is not None}
    with pytest.raises(ValidationError, match=problem):
        HttpSettings.model_validate({"auth": settings_})


def test_a_public_key_must_be_public_and_fit_the_algorithms(idp: IdentityProvider) -> None:
    base = {"type": "jwt", "issuer": idp.issuer, "audience": AUDIENCE}
    pem = idp.signers[0].public_pem.decode()
    assert HttpSettings.model_validate({"auth": {**base, "public_key": pem}}).auth
    with pytest.raises(ValidationError, match="an RSA key, which cannot verify ES256"):
        HttpSettings.model_validate({"auth": {**base, "public_key": pem,
                                              "algorithms": ["RS256", "ES256"]}})
    with pytest.raises(ValidationError, match="holds a private key"):
        HttpSettings.model_validate({"auth": {**base, "public_key": "-----BEGIN PRIVATE "
                                              "KEY-----\nMIIB\n-----END PRIVATE KEY-----"}})


def test_serve_and_check_report_the_auth_config(idp: IdentityProvider, tmp_path: Path) -> None:
    bad = write_config(tmp_path / "bad", {}, http={"auth": _jwt_auth(
        idp, algorithms=["RS256", "HS256"])})
    refused = cli("--config-dir", str(bad), "serve", "--http", env={"ORCH_HTTP_TOKEN": None})
    assert refused.returncode == 2
    assert "http.auth.jwt.algorithms" in refused.stderr
    assert "HS256 is a shared-secret algorithm" in refused.stderr

    good = write_config(tmp_path / "good", {}, http={"auth": _jwt_auth(idp)})
    checked = cli("--config-dir", str(good), "--data-dir", str(tmp_path / "d"), "check",
                  "--timeout", "20", env={"ORCH_HTTP_TOKEN": None})
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"http auth: jwt from {idp.issuer} for audience {AUDIENCE}" in checked.stdout
    assert "ops-run→read+run" in checked.stdout
    assert f"JWKS {idp.base}/certs: 1 usable key(s)" in checked.stdout

    gone = write_config(tmp_path / "gone", {}, http={"auth": _jwt_auth(
        idp, jwks_uri=f"{idp.base}/no-such-certs")})
    unusable = cli("--config-dir", str(gone), "--data-dir", str(tmp_path / "d"), "check",
                   "--timeout", "20", env={"ORCH_HTTP_TOKEN": None})
    assert unusable.returncode == 1
    assert f"JWKS {idp.base}/no-such-certs unusable: HTTPStatusError" in unusable.stdout


def test_the_readme_examples_validate() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```yaml\n")[1:]]
    examples = [yaml.safe_load(b)["http"] for b in blocks if "  auth:\n    type:" in b]
    assert len(examples) == 2
    for http in examples:
        assert HttpSettings.model_validate(http).auth is not None
