"""A real single-node Apache Kafka broker (KRaft) run from Maven-resolved jars with Java 17.

For machines without Docker: `deploy/kafka/pom.xml` (shipped in the package) resolves the Kafka
runtime classpath into a cache directory (`jar_cache_dir`); `LocalKafka` formats a storage
directory under its home, starts `kafka.Kafka` in its own process group and waits until the
broker answers a metadata request.
A small state file in the home lets one process start the broker and another stop it.

Optionally (`scram_users`) the broker gets a second listener, SASL_PLAINTEXT with SCRAM-SHA-256
and SCRAM-SHA-512, whose credentials are created when the storage is formatted (KRaft has no
ZooKeeper to add them later); the PLAINTEXT listener stays as it is.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from churnstream.stream.devtools import processes
from churnstream.stream.devtools.deploy_files import deploy_file
from churnstream.stream.errors import ChurnstreamError

HOME_ENV: Final = "CHURNSTREAM_KAFKA_HOME"
CACHE_ENV: Final = "CHURNSTREAM_CACHE_DIR"
MIN_JAVA: Final = 17
SCRAM_MECHANISMS: Final = ("SCRAM-SHA-256", "SCRAM-SHA-512")
LOG_TAIL_LINES: Final = 40
# A dev broker on a shared 2-core machine: enough heap for tests and the demo, no more.
JVM_OPTS: Final = (
    "-Xms256m",
    "-Xmx1g",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


class KafkaPrerequisiteError(ChurnstreamError, RuntimeError):
    """A tool needed to run the local broker (Java 17+, Maven) is missing or too old."""


class KafkaStartError(ChurnstreamError, RuntimeError):
    """The broker process died or did not answer in time; the message ends with its log tail."""


@dataclass(frozen=True, slots=True)
class BrokerState:
    """What `<home>/broker.json` records so that other processes can find the broker."""

    pid: int | None
    port: int
    controller_port: int
    bootstrap: str
    sasl_port: int | None = None
    """Port of the SASL_PLAINTEXT (SCRAM) listener, if the broker has one."""

    @property
    def sasl_bootstrap(self) -> str | None:
        return f"127.0.0.1:{self.sasl_port}" if self.sasl_port else None


def default_home(env: Mapping[str, str] | None = None) -> Path:
    """`$CHURNSTREAM_KAFKA_HOME`, else `.churnstream/kafka` under the current directory."""
    env = os.environ if env is None else env
    return Path(env.get(HOME_ENV) or Path.cwd() / ".churnstream" / "kafka")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse_java_major(version_output: str) -> int | None:
    """Major version from `java -version` output (`"1.8.0_392"` -> 8, `"17.0.15"` -> 17)."""
    match = re.search(r'version "([^"]+)"', version_output)
    if match is None:
        return None
    parts = re.split(r"[._+-]", match.group(1))
    if not parts[0].isdigit():
        return None
    major = int(parts[0])
    if major == 1 and len(parts) > 1 and parts[1].isdigit():
        return int(parts[1])
    return major


def new_cluster_id() -> str:
    """A cluster id in the format of `kafka-storage random-uuid` (URL-safe base64, 22 chars)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Kafka rejects ids that start with '-' (they look like command-line flags).
        if not text.startswith("-"):
            return text


def render_server_properties(
    port: int,
    controller_port: int,
    data_dir: Path,
    sasl_port: int | None = None,
    ssl: tuple[int, Path] | None = None,
) -> str:
    """`server.properties` of a combined broker+controller node bound to 127.0.0.1 only.

    With `sasl_port`, a SASL_PLAINTEXT listener offering SCRAM-SHA-256/512 is added there; with
    `ssl` (port, PEM file holding the broker's private key and certificate chain), an SSL
    listener.
    """
    listeners = f"PLAINTEXT://127.0.0.1:{port}"
    protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    if sasl_port is not None:
        listeners += f",SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
        protocols += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
    if ssl is not None:
        listeners += f",SSL://127.0.0.1:{ssl[0]}"
        protocols += ",SSL:SSL"
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        # Dynamic quorum (KIP-853): formatted with --standalone, so no controller.quorum.voters.
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "listeners": f"{listeners},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": listeners,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": protocols,
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": "0",
        "offsets.topic.replication.factor": "1",
        # One partition instead of 50: the first consumer group joins in well under a second.
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
    }
    if sasl_port is not None:
        props["sasl.enabled.mechanisms"] = ",".join(SCRAM_MECHANISMS)
        for mechanism in SCRAM_MECHANISMS:
            props[f"listener.name.sasl_plaintext.{mechanism.lower()}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
    if ssl is not None:
        props["listener.name.ssl.ssl.keystore.type"] = "PEM"
        props["listener.name.ssl.ssl.keystore.location"] = str(ssl[1])
    return "".join(f"{key}={value}\n" for key, value in props.items())


def scram_format_args(users: Mapping[str, str]) -> list[str]:
    """`StorageTool format` arguments creating each user's credentials for both mechanisms."""
    args: list[str] = []
    for name, password in users.items():
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or any(c in password for c in ",[]="):
            # The tool parses `[name=...,password=...]` without quoting.
            raise ValueError(f"SCRAM user {name!r}: name or password has unsupported characters")
        for mechanism in SCRAM_MECHANISMS:
            args += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
    return args


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file, or a note that it does not exist."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def find_java(env: Mapping[str, str] | None = None) -> str:
    """Path of a Java >= 17 executable (`$JAVA_HOME/bin/java`, else `java` on PATH)."""
    env = os.environ if env is None else env
    java_home = env.get("JAVA_HOME")
    candidate = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not candidate or not Path(candidate).exists():
        raise KafkaPrerequisiteError(
            "Java not found: install a Java 17+ JDK (e.g. `apt-get install "
            "openjdk-17-jdk-headless`) or use Docker / set KAFKA_BOOTSTRAP_SERVERS."
        )
    result = subprocess.run(
        [candidate, "-version"], capture_output=True, text=True, timeout=30, check=False
    )
    major = parse_java_major(result.stderr + result.stdout)
    if major is None or major < MIN_JAVA:
        raise KafkaPrerequisiteError(
            f"{candidate} is Java {major or 'unknown'}; Kafka 4 needs Java {MIN_JAVA}+: install "
            "openjdk-17-jdk-headless (or newer) and put it first on PATH or in JAVA_HOME."
        )
    return candidate


def pid_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # Field 3 (after the parenthesised command name) is the state letter.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_pid_exit(pid: int, timeout: float) -> bool:
    """Wait until `pid` exits (works for non-children via a pidfd); True if it did."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], max(timeout, 0.0))
    finally:
        os.close(fd)
    return bool(readable) or not pid_alive(pid)


async def _metadata_ok(bootstrap: str, timeout: float) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=max(int(timeout * 1000), 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout)
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    # A KRaft broker lists itself once it is registered and unfenced.
    return bool(cluster.get("brokers"))


def _port_open(address: str, timeout: float) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def broker_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """True if a Kafka broker at `bootstrap` answers a metadata request within `timeout`."""
    if not _port_open(bootstrap.split(",")[0], timeout):
        return False  # cheap pre-check that also keeps aiokafka's connect errors out of the log
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_metadata_ok(bootstrap, timeout))
    # Called from async code: probe on a private loop in a worker thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _metadata_ok(bootstrap, timeout)).result()


def wait_until_answers(
    bootstrap: str,
    deadline: float,
    *,
    wait_or_died: Callable[[float], bool] | None = None,
    describe_failure: Callable[[str], str] = lambda reason: reason,
) -> None:
    """Block until `bootstrap` answers, or raise `KafkaStartError` at `deadline` (monotonic).

    `wait_or_died(seconds)` waits up to `seconds` and returns True if the broker process died;
    it doubles as the back-off between probes, so a crash is noticed at once.
    """
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise KafkaStartError(describe_failure(f"broker at {bootstrap} did not answer in time"))
        if broker_answers(bootstrap, timeout=min(5.0, remaining)):
            return
        pause = min(0.5, max(deadline - time.monotonic(), 0.0))
        if wait_or_died is not None:
            if wait_or_died(pause):
                raise KafkaStartError(describe_failure("broker process exited during start-up"))
        else:
            time.sleep(pause)


def jar_cache_dir(pom: Path, env: Mapping[str, str] | None = None) -> Path:
    """Where the jars of `pom` are kept: outside the package (a wheel's files may be read-only),
    one folder per pom content so that a new Kafka version is fetched beside the old one."""
    env = os.environ if env is None else env
    root = env.get(CACHE_ENV) or str(
        Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "churnstream"
    )
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    return Path(root) / f"kafka-{digest}"


class LocalKafka:
    """A single-node KRaft Kafka broker run from Maven-resolved jars (see `jar_cache_dir`).

    `home` holds `server.properties`, the data (`data/`), logs (`logs/`) and `broker.json`.
    `die_with_parent=True` makes Linux stop the broker when the starting process dies (tests);
    leave it False when one command starts the broker and another stops it.
    `scram_users` ({name: password}) adds the SASL_PLAINTEXT SCRAM listener (see
    `sasl_bootstrap`); credentials are created only when the home is first formatted.
    `ssl_keystore` (a PEM file with the broker's private key and certificate chain) adds an SSL
    listener on a free port (`ssl_bootstrap`, known to the process that started the broker).
    """

    def __init__(
        self,
        home: Path,
        port: int | None = None,
        *,
        controller_port: int | None = None,
        kafka_dir: Path | None = None,
        die_with_parent: bool = False,
        scram_users: Mapping[str, str] | None = None,
        ssl_keystore: Path | None = None,
    ) -> None:
        self.home = Path(home).resolve()
        self.kafka_dir = Path(kafka_dir) if kafka_dir is not None else deploy_file("kafka")
        self._port = port
        self._controller_port = controller_port
        self._die_with_parent = die_with_parent
        self._scram_users = dict(scram_users or {})
        self._ssl_keystore = ssl_keystore
        self.ssl_bootstrap: str | None = None
        """Address of the SSL listener ("127.0.0.1:PORT") once `start` opened one."""
        self._proc: subprocess.Popen[bytes] | None = None

    # -- paths -------------------------------------------------------------------------------
    @property
    def lib_dir(self) -> Path:
        return jar_cache_dir(self.kafka_dir / "pom.xml") / "target" / "lib"

    @property
    def properties_path(self) -> Path:
        return self.home / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_path(self) -> Path:
        return self.home / "logs" / "server.log"

    @property
    def state_path(self) -> Path:
        return self.home / "broker.json"

    @property
    def pid(self) -> int | None:
        """Pid of the running broker (also one started by another process), else None."""
        state = self._read_state()
        if state is None or state.pid is None:
            return None
        return state.pid if self._is_our_broker(state.pid) else None

    @property
    def sasl_bootstrap(self) -> str | None:
        """Address of the SCRAM listener ("127.0.0.1:PORT"), if this broker has one."""
        state = self._read_state()
        return state.sasl_bootstrap if state is not None else None

    # -- public API --------------------------------------------------------------------------
    def ensure_jars(self) -> Path:
        """Make sure the Kafka runtime jars are in `lib_dir` (running Maven once if not)."""
        if any(self.lib_dir.glob("kafka_2.13-*.jar")):
            return self.lib_dir
        find_java()  # Maven needs it too; fail with the Java message first.
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaPrerequisiteError(
                f"Kafka jars missing in {self.lib_dir} and Maven not found: install Maven "
                "(e.g. `apt-get install maven`) or use Docker / set KAFKA_BOOTSTRAP_SERVERS."
            )
        # Maven runs on a copy of the pom in the cache, so it writes nothing beside the package.
        pom = self.lib_dir.parent / "pom.xml"
        pom.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.kafka_dir / "pom.xml", pom)
        result = subprocess.run(
            [mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies"],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0 or not any(self.lib_dir.glob("kafka_2.13-*.jar")):
            output = "\n".join((result.stdout + result.stderr).splitlines()[-LOG_TAIL_LINES:])
            raise KafkaPrerequisiteError(
                f"`mvn -f {pom} dependency:copy-dependencies` failed:\n{output}"
            )
        return self.lib_dir

    def status(self) -> str | None:
        """Bootstrap address if this home's broker process is running, else None."""
        state = self._read_state()
        if state is None or state.pid is None or not self._is_our_broker(state.pid):
            return None
        return state.bootstrap

    def start(self, timeout: float = 90) -> str:
        """Start the broker (or reuse a running one) and return "127.0.0.1:PORT" once it answers."""
        running = self.status()
        if running is not None:
            return running
        deadline = time.monotonic() + timeout
        java = find_java()
        lib = self.ensure_jars()
        port, controller_port = self._choose_ports()
        sasl_port = self._choose_sasl_port({port, controller_port})
        ssl = None
        if self._ssl_keystore is not None:
            ssl_port = free_port()
            while ssl_port in {port, controller_port, sasl_port}:
                ssl_port = free_port()
            ssl = (ssl_port, self._ssl_keystore.resolve())
            self.ssl_bootstrap = f"127.0.0.1:{ssl_port}"
        bootstrap = f"127.0.0.1:{port}"
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.properties_path.write_text(
            render_server_properties(port, controller_port, self.data_dir, sasl_port, ssl),
            encoding="utf-8",
        )
        classpath = str(lib / "*")
        self._format_storage(java, classpath)
        self._write_state(BrokerState(None, port, controller_port, bootstrap, sasl_port))
        log4j = self.kafka_dir / "log4j2.yaml"
        cmd = [
            java,
            *JVM_OPTS,
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(self.properties_path),
        ]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                start_new_session=True,  # own process group: Ctrl-C in a terminal spares it
                preexec_fn=processes.die_with_parent if self._die_with_parent else None,
            )
        self._write_state(BrokerState(self._proc.pid, port, controller_port, bootstrap, sasl_port))
        try:
            wait_until_answers(
                bootstrap,
                deadline,
                wait_or_died=self._wait_or_died,
                describe_failure=self._failure_message,
            )
        except BaseException:
            self.stop()
            raise
        return bootstrap

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the broker's process group, SIGKILL after `timeout` s; no-op if not running."""
        pid = self._proc.pid if self._proc is not None else self.pid
        if pid is not None:
            self._signal_group(pid, signal.SIGTERM)
            if not self._wait_exit(pid, timeout):
                self._signal_group(pid, signal.SIGKILL)
                self._wait_exit(pid, 10)
        self._proc = None
        state = self._read_state()
        if state is not None and state.pid is not None:
            self._write_state(
                BrokerState(
                    None, state.port, state.controller_port, state.bootstrap, state.sasl_port
                )
            )

    # -- internals ---------------------------------------------------------------------------
    def _choose_ports(self) -> tuple[int, int]:
        # Reuse the ports of an already formatted home: the controller endpoint is recorded in
        # the KRaft voter set at format time.
        state = self._read_state()
        port = self._port or (state.port if state else None) or free_port()
        cport = self._controller_port or (state.controller_port if state else None)
        if cport is None or cport == port:
            cport = free_port()
        return port, cport

    def _choose_sasl_port(self, taken: set[int]) -> int | None:
        state = self._read_state()
        if state is not None and state.sasl_port:
            return state.sasl_port  # a formatted home keeps its listeners
        if not self._scram_users:
            return None
        port = free_port()
        while port in taken:
            port = free_port()
        return port

    def _format_storage(self, java: str, classpath: str) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        result = subprocess.run(
            [
                java,
                "-Xmx256m",
                f"-Dlog4j2.configurationFile={self.kafka_dir / 'log4j2.yaml'}",
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                new_cluster_id(),
                "--config",
                str(self.properties_path),
                "--standalone",
                *scram_format_args(self._scram_users),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            output = f"{result.stdout}{result.stderr}"
            for password in self._scram_users.values():
                output = output.replace(password, "***")  # never echo a password
            raise KafkaStartError(f"formatting {self.data_dir} failed:\n{output}".rstrip())

    def _wait_or_died(self, seconds: float) -> bool:
        assert self._proc is not None
        try:
            self._proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _failure_message(self, reason: str) -> str:
        return (
            f"Local Kafka in {self.home}: {reason}. Last {LOG_TAIL_LINES} lines of "
            f"{self.log_path}:\n{log_tail(self.log_path)}"
        )

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        return wait_pid_exit(pid, timeout)

    @staticmethod
    def _signal_group(pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)

    def _is_our_broker(self, pid: int) -> bool:
        # Guards against pid reuse: the command line must be this home's kafka.Kafka.
        if not pid_alive(pid):
            return False
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return b"kafka.Kafka" in argv and str(self.properties_path).encode() in argv

    def _read_state(self) -> BrokerState | None:
        try:
            raw: dict[str, Any] = json.loads(self.state_path.read_text(encoding="utf-8"))
            return BrokerState(
                pid=raw.get("pid"),
                port=int(raw["port"]),
                controller_port=int(raw["controller_port"]),
                bootstrap=str(raw["bootstrap"]),
                sasl_port=int(raw["sasl_port"]) if raw.get("sasl_port") else None,
            )
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def _write_state(self, state: BrokerState) -> None:
        tmp = self.state_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(state)), encoding="utf-8")
        tmp.replace(self.state_path)
