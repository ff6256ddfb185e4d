"""A throw-away Docker daemon for the container tests, and the Debian base image they build on.

No container daemon runs on the CI machine and no registry is reachable, but Debian's
`docker.io` runs as root. `DockerDaemon` starts `dockerd` by hand (there is no systemd) with
everything of its own under one folder in /tmp: socket, data root, exec root, pid file;
overlay2 storage and the host's MTU (1400 here, so packets to the mirrors fit). On stop it
removes what dockerd leaves behind: its mounts, the `docker0` bridge and its iptables chains.

`base_image()` makes `local/debian:bookworm` with `debootstrap --variant=minbase` from the
mirror apt already uses and `docker import`; the root filesystem's tarball is cached under
~/.cache (about 40 s to make, 1 s to import), so only the first session pays for it.

Run `python -m tests.docker_daemon DIR` to keep a daemon up by hand (Ctrl-C stops it).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

BASE_IMAGE = "local/debian:bookworm"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "orchestrator-mcp-tests"
BASE_TARBALL = CACHE / "debian-bookworm-minbase.tar"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Certificate authorities the host trusts beyond Debian's (a TLS-intercepting proxy's):
# given to image builds as a build-stage-only file (see the Dockerfile's EXTRA_CA_CERTS).
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


class DaemonUnavailable(RuntimeError):
    """Why no daemon can run here (the tests skip with it)."""


def _mirror() -> str:
    """The Debian mirror apt uses on this machine (sources.list or deb822 sources)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        with contextlib.suppress(OSError):
            for match in re.finditer(r"(?:^deb\s+(?:\[[^]]*\]\s+)?|^URIs:\s*)(\S+)",
                                     source.read_text(), re.MULTILINE):
                uri = match.group(1)
                if uri.rstrip("/").endswith("/debian"):
                    return uri
    return DEFAULT_MIRROR


def extra_ca_bundle() -> str:
    """The host's extra CA certificates as one PEM text ('' when it has none)."""
    if not EXTRA_CA_DIR.is_dir():
        return ""
    return "".join(p.read_text() for p in sorted(EXTRA_CA_DIR.glob("**/*.crt")))


class DockerDaemon:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.log = root / "dockerd.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._had_bridge = Path("/sys/class/net/docker0").exists()
        self._links_before = _links()
        self._forward_policy = _forward_policy()
        self._ip_forward = IP_FORWARD.read_text().strip() if IP_FORWARD.exists() else None

    @property
    def env(self) -> dict[str, str]:
        """Environment for the `docker` and `docker-compose` clients to use this daemon."""
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0",
                "COMPOSE_DOCKER_CLI_BUILD": "0"}

    def start(self, timeout: float = 60) -> None:
        if os.geteuid() != 0:
            raise DaemonUnavailable("dockerd needs root; these tests run as a normal user")
        for tool in ("dockerd", "docker"):
            if shutil.which(tool) is None:
                raise DaemonUnavailable(f"{tool} is not installed (apt-get install docker.io)")
        if self._had_bridge:
            raise DaemonUnavailable("another Docker daemon owns the docker0 bridge here")
        self.root.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                ["dockerd", "-H", self.host, "--data-root", str(self.root / "data"),
                 "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "pid"),
                 "--storage-driver=overlay2", "--mtu", "1400"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = self.log.read_text(errors="replace")[-1500:]
                self.stop()
                raise DaemonUnavailable(f"dockerd exited: {tail}")
            if self.docker("version", check=False).returncode == 0:
                return
            time.sleep(0.5)
        self.stop()
        raise DaemonUnavailable(f"dockerd did not answer within {timeout} s")

    def docker(self, *args: str, check: bool = True, timeout: float = 1800,
               input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        # /usr/bin/docker: Debian's client matches the daemon it installed.
        client = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
        result = subprocess.run([client, *args], env=self.env, capture_output=True,
                                timeout=timeout, input=input)  # type: ignore[call-overload]
        text = subprocess.CompletedProcess(
            result.args, result.returncode, result.stdout.decode(errors="replace"),
            result.stderr.decode(errors="replace"))
        if check and result.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed: {text.stderr[-3000:]}")
        return text

    def base_image(self) -> str:
        """`local/debian:bookworm` from the cached debootstrap tarball (made on first use)."""
        if self.docker("image", "inspect", BASE_IMAGE, check=False).returncode == 0:
            return BASE_IMAGE
        if not BASE_TARBALL.is_file():
            if shutil.which("debootstrap") is None:
                raise DaemonUnavailable("debootstrap is not installed (apt-get install "
                                        "debootstrap)")
            CACHE.mkdir(parents=True, exist_ok=True)
            rootfs = CACHE / "rootfs"
            shutil.rmtree(rootfs, ignore_errors=True)
            subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs),
                            _mirror()], check=True, capture_output=True, timeout=900)
            # The packages debootstrap downloaded and apt's lists: 80 MB nobody needs.
            for leftover in [*rootfs.glob("var/cache/apt/archives/*.deb"),
                             *rootfs.glob("var/lib/apt/lists/*_*")]:
                leftover.unlink()
            partial = BASE_TARBALL.with_suffix(".partial")
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
            partial.rename(BASE_TARBALL)
            shutil.rmtree(rootfs, ignore_errors=True)
        with BASE_TARBALL.open("rb") as tarball:
            self.docker("import", "-", BASE_IMAGE, input=tarball.read())
        return BASE_IMAGE

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(Exception):
                containers = self.docker("ps", "-aq", check=False, timeout=30).stdout.split()
                if containers:
                    self.docker("rm", "-f", *containers, check=False, timeout=120)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self._clean_host()

    def _clean_host(self) -> None:
        """What dockerd leaves on the host after it stops."""
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(self.root))]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True)
        if not self._had_bridge:
            ours = ({"docker0"} | _links()) - self._links_before  # + compose networks' bridges
            for table, chains in (("nat", ("DOCKER",)),
                                  ("filter", ("DOCKER", "DOCKER-ISOLATION-STAGE-1",
                                              "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER"))):
                _drop_rules(table, chains, ours)
            for link in ours:
                subprocess.run(["ip", "link", "delete", link], capture_output=True)
            # dockerd turns forwarding on and the FORWARD policy to DROP: put both back.
            if self._forward_policy and shutil.which("iptables"):
                subprocess.run(["iptables", "-P", "FORWARD", self._forward_policy],
                               capture_output=True)
            if self._ip_forward is not None:
                with contextlib.suppress(OSError):
                    IP_FORWARD.write_text(self._ip_forward)
        shutil.rmtree(self.root, ignore_errors=True)


def _links() -> set[str]:
    return {p.name for p in Path("/sys/class/net").iterdir()
            if p.name.startswith(("br-", "veth"))}


def _forward_policy() -> str | None:
    if shutil.which("iptables") is None:
        return None
    for line in subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True,
                               text=True).stdout.splitlines():
        if line.startswith("-P FORWARD "):
            return line.split()[2]
    return None


def _drop_rules(table: str, chains: tuple[str, ...], links: set[str]) -> None:
    """Remove the rules that jump to `chains` or name one of `links` (docker0 and the
    bridges the daemon made), then the chains themselves."""
    if shutil.which("iptables") is None:
        return
    rules = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True,
                           text=True).stdout.splitlines()
    for rule in rules:
        parts = rule.split()
        if parts[:1] != ["-A"] or parts[1] in chains:
            continue
        jumps = "-j" in parts and parts[parts.index("-j") + 1] in chains
        if jumps or links & set(parts):
            subprocess.run(["iptables", "-t", table, "-D", *parts[1:]], capture_output=True)
    for chain in chains:
        subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True)
        subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True)


if __name__ == "__main__":
    import sys

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # for sigwait
    daemon = DockerDaemon(Path(sys.argv[1]))
    daemon.start()
    print(daemon.base_image(), "ready; export DOCKER_HOST=" + daemon.host, flush=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        daemon.stop()
