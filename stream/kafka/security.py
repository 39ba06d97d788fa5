"""Kafka connection security and privacy secrets: settings -> aiokafka / Faust options.

`SecuritySettings` is read from `CHURNSTREAM_*` environment variables (the same prefix as
`stream.settings.Settings`, kept apart so secrets live in one place). Every secret is held in a
`Secret`, whose `repr()`/`str()` is a mask: a settings object can be logged or shown in an error
without leaking the password or the pseudonym key. Variables are documented in docs/security.md.
"""

from __future__ import annotations

import difflib
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from churnstream.stream.contract.pseudonym import Pseudonymizer, PseudonymKeyError
from churnstream.stream.errors import ChurnstreamError

PREFIX: Final = "CHURNSTREAM_"
PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
MASK: Final = "***"

# Every variable this module reads (the `_FILE` forms read the secret from a file instead).
ENV_VARS: Final = frozenset(
    PREFIX + name
    for name in (
        "SECURITY_PROTOCOL",
        "SASL_MECHANISM",
        "SASL_USERNAME",
        "SASL_PASSWORD",
        "SASL_PASSWORD_FILE",
        "SSL_CAFILE",
        "SSL_CERTFILE",
        "SSL_KEYFILE",
        "SSL_KEY_PASSWORD",
        "SSL_KEY_PASSWORD_FILE",
        "SSL_CHECK_HOSTNAME",
        "PSEUDONYM_KEY",
        "PSEUDONYM_KEY_FILE",
        "BLOCKED_USERS_FILE",
        "WEB_TOKEN",
        "WEB_TOKEN_FILE",
        "MODEL_SIGNING_KEY",
        "MODEL_SIGNING_KEY_FILE",
    )
)
MIN_WEB_TOKEN_CHARS: Final = 16
MIN_SIGNING_KEY_CHARS: Final = 16
# Other CHURNSTREAM_* variables read outside the Settings object (the local broker, tests).
OTHER_VARS: Final = frozenset(
    PREFIX + name
    for name in ("KAFKA_HOME", "CACHE_DIR", "TESTS_ALLOW_NO_KAFKA", "TEST_KAFKA_IMAGE")
)
_SASL_VARS: Final = ("SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD", "SASL_PASSWORD_FILE")
_SSL_VARS: Final = (
    "SSL_CAFILE",
    "SSL_CERTFILE",
    "SSL_KEYFILE",
    "SSL_KEY_PASSWORD",
    "SSL_KEY_PASSWORD_FILE",
    "SSL_CHECK_HOSTNAME",
)


class SecurityError(ChurnstreamError, ValueError):
    """A security setting is missing or unusable; the message names the variable, never a secret."""


class Secret:
    """A secret string whose repr/str is masked; `reveal()` is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # pickling would copy the secret around unmasked
        raise TypeError("Secret values are not picklable")


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """How churnstream authenticates to Kafka and which privacy secrets it holds."""

    security_protocol: str = "PLAINTEXT"
    """PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL."""
    sasl_mechanism: str = "SCRAM-SHA-512"
    """PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (used with SASL_* protocols only)."""
    sasl_username: str = ""
    sasl_password: Secret = field(default_factory=lambda: Secret(""))
    ssl_cafile: str = ""
    """CA bundle that signs the brokers' certificates; empty = the system's trust store."""
    ssl_certfile: str = ""
    """Client certificate (PEM) for mutual TLS; its key in `ssl_keyfile` or in the same file."""
    ssl_keyfile: str = ""
    ssl_key_password: Secret = field(default_factory=lambda: Secret(""))
    ssl_check_hostname: bool = True
    pseudonym_key: Secret = field(default_factory=lambda: Secret(""))
    """HMAC key of pseudonymisation (stream.contract.pseudonym); empty = pseudonymisation off."""
    blocked_users_file: str = ""
    """File of user ids (one a line) whose later events are dead-lettered (`erased_user`)."""
    web_token: Secret = field(default_factory=lambda: Secret(""))
    """Bearer token the read API requires (`Authorization: Bearer ...`); empty = none, which
    only a web server bound to loopback may have."""
    model_signing_key: Secret = field(default_factory=lambda: Secret(""))
    """HMAC key of model snapshots (model.snapshot_signing): published ones are signed, and
    unsigned or wrongly signed ones are refused; empty = snapshots are neither signed nor
    checked."""

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SecuritySettings:
        """Read and validate the settings from `env` (default: os.environ)."""
        env = os.environ if env is None else env

        def get(name: str, default: str = "") -> str:
            return env.get(PREFIX + name, default).strip()

        check = get("SSL_CHECK_HOSTNAME", "true").lower()
        if check not in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            raise SecurityError(f"{PREFIX}SSL_CHECK_HOSTNAME={check!r}: expected true/false")
        settings = cls(
            security_protocol=get("SECURITY_PROTOCOL", "PLAINTEXT").upper(),
            sasl_mechanism=get("SASL_MECHANISM", "SCRAM-SHA-512").upper(),
            sasl_username=get("SASL_USERNAME"),
            sasl_password=_secret(env, "SASL_PASSWORD"),
            ssl_cafile=get("SSL_CAFILE"),
            ssl_certfile=get("SSL_CERTFILE"),
            ssl_keyfile=get("SSL_KEYFILE"),
            ssl_key_password=_secret(env, "SSL_KEY_PASSWORD"),
            ssl_check_hostname=check in {"1", "true", "yes", "on"},
            pseudonym_key=_secret(env, "PSEUDONYM_KEY"),
            blocked_users_file=get("BLOCKED_USERS_FILE"),
            web_token=_secret(env, "WEB_TOKEN"),
            model_signing_key=_secret(env, "MODEL_SIGNING_KEY"),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        def need(ok: bool, var: str, what: str) -> None:
            if not ok:
                raise SecurityError(f"{PREFIX}{var}: {what}")

        need(self.security_protocol in PROTOCOLS, "SECURITY_PROTOCOL", f"one of {PROTOCOLS}")
        if self.uses_sasl:
            need(self.sasl_mechanism in MECHANISMS, "SASL_MECHANISM", f"one of {MECHANISMS}")
            need(
                not (self.sasl_mechanism == "PLAIN" and not self.uses_ssl),
                "SASL_MECHANISM",
                "PLAIN over SASL_PLAINTEXT sends the password in clear: use SASL_SSL, or SCRAM",
            )
            need(bool(self.sasl_username), "SASL_USERNAME", "required with SASL")
            need(bool(self.sasl_password), "SASL_PASSWORD", "required with SASL (or _FILE)")
        need(
            not (self.uses_ssl and not self.ssl_check_hostname and not self.ssl_cafile),
            "SSL_CHECK_HOSTNAME",
            "false only with SSL_CAFILE (a private CA): with the system trust store any "
            "certificate of a public CA would be accepted for the broker",
        )
        need(
            not self.web_token or len(self.web_token.reveal()) >= MIN_WEB_TOKEN_CHARS,
            "WEB_TOKEN",
            f"at least {MIN_WEB_TOKEN_CHARS} characters",
        )
        need(
            not self.model_signing_key
            or len(self.model_signing_key.reveal()) >= MIN_SIGNING_KEY_CHARS,
            "MODEL_SIGNING_KEY",
            f"at least {MIN_SIGNING_KEY_CHARS} characters",
        )
        for var, path in (
            ("SSL_CAFILE", self.ssl_cafile),
            ("SSL_CERTFILE", self.ssl_certfile),
            ("SSL_KEYFILE", self.ssl_keyfile),
            ("BLOCKED_USERS_FILE", self.blocked_users_file),
        ):
            need(not path or Path(path).is_file(), var, f"no such file: {path}")

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context from the configured CA/cert/key, or None without SSL.

        aiokafka refuses SSL/SASL_SSL without a context, so one is always built for them.
        """
        if not self.uses_ssl:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ssl_cafile or None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = self.ssl_check_hostname
        if self.ssl_certfile:
            try:
                ctx.load_cert_chain(
                    self.ssl_certfile,
                    self.ssl_keyfile or None,
                    password=self.ssl_key_password.reveal() or None,
                )
            except (ssl.SSLError, OSError) as exc:
                # The exception text never holds the key password; keep only its reason.
                raise SecurityError(
                    f"{PREFIX}SSL_CERTFILE/SSL_KEYFILE: cannot load the client certificate "
                    f"({type(exc).__name__}: {getattr(exc, 'reason', None) or exc.strerror})"
                ) from None
        return ctx

    def aiokafka_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka producers, consumers and admin clients.

        PLAINTEXT gives `{}` so the clients keep aiokafka's defaults exactly.
        """
        if self.security_protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.uses_ssl:
            options["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            # aiokafka takes the SCRAM credentials in its sasl_plain_* arguments too.
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.reveal()
        return options

    def faust_credentials(self) -> Any:
        """The Faust app's `broker_credentials` (None for PLAINTEXT)."""
        import faust

        if self.security_protocol == "PLAINTEXT":
            return None
        if not self.uses_sasl:
            return faust.SSLCredentials(self.ssl_context())
        return faust.SASLCredentials(
            username=self.sasl_username,
            password=self.sasl_password.reveal(),
            mechanism=self.sasl_mechanism,
            ssl_context=self.ssl_context(),  # None -> SASL_PLAINTEXT, a context -> SASL_SSL
        )

    def pseudonymizer(self) -> Pseudonymizer:
        """User id -> pseudonym with the configured key (identity when no key is set)."""
        key = self.pseudonym_key.reveal().encode("utf-8")
        try:
            return Pseudonymizer(key or None)
        except PseudonymKeyError as exc:
            raise SecurityError(f"{PREFIX}PSEUDONYM_KEY: {exc}") from None

    def snapshot_key(self) -> bytes | None:
        """The model snapshots' HMAC key as bytes, None when none is set."""
        return self.model_signing_key.reveal().encode("utf-8") or None

    def blocked_users(self) -> frozenset[str]:
        """Ids in `blocked_users_file` (one a line, `#` comments), pseudonymised if a key is set.

        Entries that already are pseudonyms are kept as they are, so the file may hold either.
        """
        if not self.blocked_users_file:
            return frozenset()
        pseudo = self.pseudonymizer()
        lines = Path(self.blocked_users_file).read_text(encoding="utf-8").splitlines()
        ids = (line.split("#", 1)[0].strip() for line in lines)
        return frozenset(pseudo.stored_id(uid) for uid in ids if uid)

    def warnings(self, env: Mapping[str, str], known: frozenset[str]) -> list[str]:
        """What in `env` this process ignores although it looks meant for it, one line each:
        SASL or SSL variables the security protocol does not use, and `CHURNSTREAM_*`
        variables churnstream does not know (`known`: the settings' variables), with the
        known name they are closest to (a misspelled one may switch a protection off)."""
        lines = []
        for names, used in ((_SASL_VARS, self.uses_sasl), (_SSL_VARS, self.uses_ssl)):
            for name in names:
                if not used and env.get(PREFIX + name):
                    lines.append(
                        f"{PREFIX}{name} is set but ignored: "
                        f"{PREFIX}SECURITY_PROTOCOL={self.security_protocol} does not use it"
                    )
        every = sorted(known | ENV_VARS | OTHER_VARS)
        for var in sorted(env):
            if var.startswith(PREFIX) and var not in known | ENV_VARS | OTHER_VARS:
                close = difflib.get_close_matches(var, every, n=1, cutoff=0.8)
                hint = f"; did you mean {close[0]}?" if close else ""
                lines.append(f"{var} is not a churnstream setting and is ignored{hint}")
        return lines

    def describe(self) -> str:
        """One log-safe line: protocol, mechanism and user, never a secret."""
        if not self.uses_sasl:
            return self.security_protocol
        return f"{self.security_protocol} {self.sasl_mechanism} user={self.sasl_username}"


def _secret(env: Mapping[str, str], name: str) -> Secret:
    """`CHURNSTREAM_<name>`, else the content of the file named by `CHURNSTREAM_<name>_FILE`."""
    direct = env.get(PREFIX + name, "")
    path = env.get(PREFIX + name + "_FILE", "").strip()
    if direct and path:
        raise SecurityError(f"{PREFIX}{name} and {PREFIX}{name}_FILE: set only one")
    if not path:
        return Secret(direct)
    try:
        # Files from secret stores usually end with a newline that is not part of the secret.
        return Secret(Path(path).read_text(encoding="utf-8").rstrip("\r\n"))
    except OSError as exc:
        raise SecurityError(f"{PREFIX}{name}_FILE={path}: {exc.strerror}") from None
